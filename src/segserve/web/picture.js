// The picture: the mask and label canvases over the image, redrawn at most once a frame, and the
// highlight under the pointer. The highlight's row in the list is set here too, so that the list can
// import the picture without the picture importing the list.

import { els } from "./elements.js";
import { placeLabels } from "./display-mask.js";
import { buildLayers, composeBase, drawMaskLayer, layerAt } from "./layers.js";
import { TAG_FONT, cssColor, lineWidthFor, textColorOn } from "./render.js";
import { drawn, state } from "./state.js";
import { onShownSizeChange } from "./viewport.js";

export function setHover(index, { scroll = false } = {}) {
  if (state.hover === index) return;
  state.hover = index;
  for (const li of els.segmentList.children) {
    const on = Number(li.dataset.index) === index;
    li.classList.toggle("active", on);
    // Hovering the picture brings the row into view in the list (never scrolling the page itself, which
    // on a phone would jump away from the picture); hovering the row itself must not scroll.
    if (on && scroll) scrollRowIntoList(li);
  }
  scheduleDraw();
}

function scrollRowIntoList(li) {
  const list = els.segmentList;
  if (list.scrollHeight <= list.clientHeight) return;
  const top = li.offsetTop - list.offsetTop;
  if (top < list.scrollTop) list.scrollTop = top;
  else if (top + li.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = top + li.offsetHeight - list.clientHeight;
}

// Hovering the picture highlights the segment under the pointer, and its row (scrolled into view).
els.stack.addEventListener("mousemove", (e) => {
  const r = state.result;
  const layers = state.layers;
  if (!r || !layers) return;
  const rect = els.maskLayer.getBoundingClientRect();
  const x = Math.floor(((e.clientX - rect.left) / rect.width) * layers.dw);
  const y = Math.floor(((e.clientY - rect.top) / rect.height) * layers.dh);
  const index = layerAt(layers, drawn().map((s) => s.index), x, y);
  const seg = index == null ? null : r.segments[index];
  setHover(index, { scroll: true });
  els.tooltip.hidden = !seg;
  if (seg) {
    els.tooltip.textContent = `#${seg.id} ${seg.label} · ${seg.confidence.toFixed(2)}`;
    // The tooltip lives inside the (possibly zoomed) stack: place it in the stack's own pixels and undo
    // the zoom on its size, so it reads the same at any zoom.
    const zoom = rect.width / els.maskLayer.offsetWidth || 1;
    els.tooltip.style.transform = `scale(${1 / zoom})`;
    const left = Math.min(e.clientX - rect.left + 14, rect.width - els.tooltip.offsetWidth - 4) / zoom;
    els.tooltip.style.left = `${Math.max(4, left)}px`;
    els.tooltip.style.top = `${Math.max(4, (e.clientY - rect.top - 30) / zoom)}px`;
  }
});
els.stack.addEventListener("mouseleave", () => {
  els.tooltip.hidden = true;
  setHover(null);
});

onShownSizeChange(() => scheduleDraw());

export function scheduleDraw() {
  if (state.drawQueued) return;
  state.drawQueued = true;
  requestAnimationFrame(() => {
    state.drawQueued = false;
    draw();
  });
}

/** The shown layers for the picture's current shown size: built once per answer and size. */
function currentLayers() {
  const r = state.result;
  const [dw, dh] = [els.maskLayer.width, els.maskLayer.height];
  if (!state.layers || state.layers.result !== r || state.layers.dw !== dw || state.layers.dh !== dh) {
    performance.mark("segserve:build-start");
    const lw = Math.max(1, Math.round((lineWidthFor(r.width, r.height) * dw) / r.width));
    state.layers = { ...buildLayers(r.segments, r.width, r.height, dw, dh, lw), result: r };
    performance.measure("segserve:build", "segserve:build-start");
  }
  return state.layers;
}

function draw() {
  const r = state.result;
  if (!r) return;
  performance.mark("segserve:draw-start");
  const layers = currentLayers();
  const segs = drawn();
  const indices = segs.map((s) => s.index);
  const hover = indices.includes(state.hover) ? state.hover : null;
  const opacity = Number(els.opacity.value);
  const outline = els.showOutline.checked;
  composeBase(layers, indices, opacity, outline);
  drawMaskLayer(els.maskLayer.getContext("2d"), layers, hover, opacity, outline);
  const lctx = els.labelLayer.getContext("2d");
  lctx.clearRect(0, 0, layers.dw, layers.dh);
  if (els.showLabels.checked) {
    // 12 screen pixels high (in the canvas's own pixels: it may be drawn at the device's pixel ratio).
    const perCss = layers.dw / (els.labelLayer.clientWidth || layers.dw);
    const tagged = hover == null ? segs : [r.segments[hover], ...segs.filter((s) => s.index !== hover)];
    state.labelRects = drawTags(lctx, tagged.filter((s) => layers.byIndex.has(s.index)), layers, Math.round(12 * perCss));
  } else {
    state.labelRects = [];
  }
  performance.measure("segserve:draw", "segserve:draw-start");
}

/** `label 0.93` tags, each on a point inside its mask, nudged apart so that none covers another. */
export function drawTags(ctx, segs, layers, size, scale = 1) {
  const pad = Math.max(2, Math.round(size / 4));
  ctx.save();
  ctx.font = `600 ${size}px ${TAG_FONT}`;
  ctx.textBaseline = "top";
  const items = segs.map((s) => {
    const tag = `${s.label} ${s.confidence.toFixed(2)}`;
    const [ax, ay] = layers.byIndex.get(s.index).anchor;
    return { tag, anchor: [ax * scale, ay * scale], width: Math.ceil(ctx.measureText(tag).width) + 2 * pad, height: size + 2 * pad };
  });
  const rects = placeLabels(items, layers.dw * scale, layers.dh * scale);
  // The first placed (the hovered, then the most confident) is drawn last, on top.
  for (let i = segs.length - 1; i >= 0; i--) {
    const { x, y, width, height } = rects[i];
    ctx.fillStyle = cssColor(segs[i].color);
    ctx.fillRect(x, y, width, height);
    ctx.fillStyle = textColorOn(segs[i].color);
    ctx.fillText(items[i].tag, x + pad, y + pad + 1);
  }
  ctx.restore();
  return rects;
}
