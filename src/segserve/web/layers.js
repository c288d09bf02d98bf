// The mask layer for large photos: every mask is turned once into two small canvases at the size it
// is shown (its fill and its outline, in its colour), and an interaction only draws those canvases.
//
//   build (per answer and shown size): RLE runs -> shown mask (display-mask.js) -> fill + outline canvases
//   compose (when the visible set, opacity or outlines change): the "base" canvas, every visible mask
//   hover (every pointer move): base at a dimmed alpha, then the hovered mask on top
//
// A mask covers the ones under it rather than blending with them (the CLI's overlay does the same):
// each mask first erases its pixels ("destination-out"), then draws its colour at its alpha.
// `counters` is the instrumentation the browser test reads: RLE decodes, canvases made (and the
// largest), layer builds and base compositions, so it can check that hovering makes none of them.

import { decodeCounts } from "./rle.js";
import { edgePixels, innerPoint, runsToShownMask } from "./display-mask.js";

export const counters = { rleDecodes: 0, canvases: 0, largestCanvas: 0, layerBuilds: 0, composes: 0 };

// Others dimmed to this while one mask is hovered: its fill to opacity * DIM, its outline to DIM.
export const DIM = 0.35;

export function makeCanvas(width, height) {
  counters.canvases++;
  counters.largestCanvas = Math.max(counters.largestCanvas, width * height);
  if (typeof OffscreenCanvas === "function") return new OffscreenCanvas(width, height);
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  return c;
}

/** Column-major runs of a segment's mask, decoded once per answer and kept on the segment. */
export function runsOf(seg) {
  if (!seg.runs) {
    counters.rleDecodes++;
    seg.runs = decodeCounts(seg.counts);
  }
  return seg.runs;
}

function paint(width, height, bits, [r, g, b]) {
  const canvas = makeCanvas(width, height);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let k = 0; k < bits.length; k++) {
    if (!bits[k]) continue;
    const o = k * 4;
    rgba[o] = r;
    rgba[o + 1] = g;
    rgba[o + 2] = b;
    rgba[o + 3] = 255;
  }
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  return canvas;
}

/**
 * The shown layers of `segments` (each { index, counts, color }) for an image of width x height
 * shown at dw x dh, outlines `lineWidth` shown pixels wide. Returns
 * { dw, dh, byIndex: Map(index -> { x, y, width, height, data, fill, edge, anchor }), base }.
 */
export function buildLayers(segments, width, height, dw, dh, lineWidth) {
  counters.layerBuilds++;
  const byIndex = new Map();
  for (const seg of segments) {
    if (typeof seg.counts !== "string") continue;
    const { shown } = runsToShownMask(runsOf(seg), height, width, dw, dh);
    if (!shown.width) continue;
    const edge = edgePixels(shown, lineWidth);
    const fill = shown.data.map((on, k) => (on && !edge[k] ? 1 : 0));
    byIndex.set(seg.index, {
      ...shown,
      fill: paint(shown.width, shown.height, fill, seg.color),
      edge: paint(shown.width, shown.height, edge, seg.color),
      anchor: innerPoint(shown),
    });
  }
  return { dw, dh, byIndex, base: makeCanvas(dw, dh), baseKey: null };
}

function drawOne(ctx, layer, fillAlpha, lineAlpha) {
  ctx.globalCompositeOperation = "destination-out";
  ctx.globalAlpha = 1;
  ctx.drawImage(layer.fill, layer.x, layer.y);
  ctx.drawImage(layer.edge, layer.x, layer.y);
  ctx.globalCompositeOperation = "source-over";
  ctx.globalAlpha = fillAlpha;
  ctx.drawImage(layer.fill, layer.x, layer.y);
  ctx.globalAlpha = lineAlpha;
  ctx.drawImage(layer.edge, layer.x, layer.y);
}

/** Redraw the base (every visible mask, highest confidence on top) if what it shows changed. */
export function composeBase(layers, indices, opacity, outline) {
  const key = `${indices.join(",")}|${opacity}|${outline}`;
  if (layers.baseKey === key) return;
  counters.composes++;
  layers.baseKey = key;
  const ctx = layers.base.getContext("2d");
  ctx.save();
  ctx.clearRect(0, 0, layers.dw, layers.dh);
  for (let i = indices.length - 1; i >= 0; i--) {
    const layer = layers.byIndex.get(indices[i]);
    if (layer) drawOne(ctx, layer, opacity, outline ? 1 : opacity);
  }
  ctx.restore();
}

/** The visible mask layer: the base, or with `hover` the base dimmed and the hovered mask on top. */
export function drawMaskLayer(ctx, layers, hover, opacity, outline) {
  ctx.save();
  ctx.globalCompositeOperation = "copy";
  ctx.globalAlpha = hover == null ? 1 : DIM;
  ctx.drawImage(layers.base, 0, 0);
  const layer = hover == null ? null : layers.byIndex.get(hover);
  if (layer) drawOne(ctx, layer, Math.min(1, opacity + 0.3), 1);
  ctx.restore();
}

/** Index of the topmost of `indices` (in confidence order) whose shown mask covers shown pixel (x, y). */
export function layerAt(layers, indices, x, y) {
  for (const index of indices) {
    const l = layers.byIndex.get(index);
    if (!l || x < l.x || y < l.y || x >= l.x + l.width || y >= l.y + l.height) continue;
    if (l.data[(y - l.y) * l.width + (x - l.x)]) return index;
  }
  return null;
}
