// The downloads at full resolution, off the page's thread: the overlay PNG, one cutout, or a ZIP of
// cutouts. A 36 MP photo's overlay touches ~150 MB of pixels and its masks are unpacked here, one at a
// time; the page stays responsive and shows the progress this worker posts.
//
// In:  { job: "overlay" | "cutouts", zip, bitmap (ImageBitmap at width x height), width, height,
//        segments: [{ index, id, label, confidence, counts, color, anchor: [x, y] image px, name }],
//        opacity, outline, labels, lineWidth }
// Out: { progress: 0..1 } ... then { files: [{ name, blob }] } or { error }

import { placeLabels } from "./display-mask.js";
import { TAG_FONT, composeMaskLayer, cssColor, textColorOn } from "./render.js";
import { rleToCrop } from "./rle.js";
import { makeZip } from "./zip.js";

self.onmessage = async ({ data }) => {
  try {
    const files = data.job === "overlay" ? [await overlay(data)] : await cutouts(data);
    self.postMessage({ files });
  } catch (err) {
    self.postMessage({ error: String((err && err.message) || err) });
  }
};

const progress = (fraction) => self.postMessage({ progress: fraction });

async function overlay({ bitmap, width, height, segments, opacity, outline, labels, lineWidth, name }) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const withCrops = segments.map((s, i) => {
    progress((0.6 * i) / segments.length);
    return { ...s, crop: rleToCrop(s.counts, height, width) };
  });
  const masks = new OffscreenCanvas(width, height);
  masks.getContext("2d").putImageData(new ImageData(composeMaskLayer(withCrops, width, height, { opacity, outline, lineWidth }), width, height), 0, 0);
  ctx.drawImage(masks, 0, 0);
  progress(0.7);
  if (labels) drawTags(ctx, segments, width, height);
  progress(0.8);
  return { name, blob: await canvas.convertToBlob({ type: "image/png" }) };
}

/** Tags on the same inner points as on the page, sized like the CLI's overlay (1/45 of the long side). */
function drawTags(ctx, segments, width, height) {
  const size = Math.max(12, Math.round(Math.max(width, height) / 45));
  const pad = Math.max(2, Math.round(size / 4));
  ctx.font = `600 ${size}px ${TAG_FONT}`;
  ctx.textBaseline = "top";
  const items = segments.map((s) => {
    const tag = `${s.label} ${s.confidence.toFixed(2)}`;
    return { tag, anchor: s.anchor, width: Math.ceil(ctx.measureText(tag).width) + 2 * pad, height: size + 2 * pad };
  });
  const rects = placeLabels(items, width, height);
  for (let i = segments.length - 1; i >= 0; i--) {
    const { x, y, width: w, height: h } = rects[i];
    ctx.fillStyle = cssColor(segments[i].color);
    ctx.fillRect(x, y, w, h);
    ctx.fillStyle = textColorOn(segments[i].color);
    ctx.fillText(items[i].tag, x + pad, y + pad + 1);
  }
}

/** Each segment's box of the photo, transparent outside its mask. */
async function cutouts({ bitmap, width, height, segments, zip, name }) {
  const files = [];
  for (const [i, s] of segments.entries()) {
    progress(i / segments.length);
    const crop = rleToCrop(s.counts, height, width);
    if (!crop.width) continue;
    const canvas = new OffscreenCanvas(crop.width, crop.height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, -crop.x, -crop.y);
    const pixels = ctx.getImageData(0, 0, crop.width, crop.height);
    const rgba = pixels.data;
    for (let k = 0; k < crop.data.length; k++) {
      if (crop.data[k]) continue;
      rgba[4 * k] = rgba[4 * k + 1] = rgba[4 * k + 2] = rgba[4 * k + 3] = 0;
    }
    ctx.putImageData(pixels, 0, 0);
    files.push({ name: s.name, blob: await canvas.convertToBlob({ type: "image/png" }) });
  }
  if (!zip) return files;
  const entries = [];
  for (const f of files) entries.push({ name: f.name, data: new Uint8Array(await f.blob.arrayBuffer()) });
  return [{ name, blob: new Blob([makeZip(entries)], { type: "application/zip" }) }];
}
