// The picture: the mask and label canvases over the image, redrawn at most once a frame, and the
// highlight under the pointer. The highlight's row in the list is set here too, so that the list can
// import the picture without the picture importing the list.

import { els } from "./elements.js";
import { composeMaskLayer, drawLabels, lineWidthFor, segmentAt } from "./render.js";
import { drawn, state } from "./state.js";

export function setHover(index) {
  if (state.hover === index) return;
  state.hover = index;
  for (const li of els.segmentList.children) li.classList.toggle("active", Number(li.dataset.index) === index);
  scheduleDraw();
}

// Hovering the picture highlights the segment under the pointer, and its row.
els.stack.addEventListener("mousemove", (e) => {
  const r = state.result;
  if (!r) return;
  const rect = els.maskLayer.getBoundingClientRect();
  const x = Math.floor(((e.clientX - rect.left) / rect.width) * r.width);
  const y = Math.floor(((e.clientY - rect.top) / rect.height) * r.height);
  const seg = segmentAt(drawn(), x, y);
  setHover(seg ? seg.index : null);
  els.tooltip.hidden = !seg;
  if (seg) {
    els.tooltip.textContent = `#${seg.id} ${seg.label} · ${seg.confidence.toFixed(2)}`;
    const left = Math.min(e.clientX - rect.left + 14, rect.width - els.tooltip.offsetWidth - 4);
    els.tooltip.style.left = `${Math.max(4, left)}px`;
    els.tooltip.style.top = `${Math.max(4, e.clientY - rect.top - 30)}px`;
  }
});
els.stack.addEventListener("mouseleave", () => {
  els.tooltip.hidden = true;
  setHover(null);
});
// Tags are sized for the picture as shown: redraw them when it is resized.
new ResizeObserver(() => scheduleDraw()).observe(els.stack);

export function scheduleDraw() {
  if (state.drawQueued) return;
  state.drawQueued = true;
  requestAnimationFrame(() => {
    state.drawQueued = false;
    draw();
  });
}

export function layerOptions(hover) {
  const r = state.result;
  return {
    opacity: Number(els.opacity.value),
    outline: els.showOutline.checked,
    hoverIndex: hover,
    lineWidth: lineWidthFor(r.width, r.height),
  };
}

function draw() {
  const r = state.result;
  if (!r) return;
  const segs = drawn();
  const hover = segs.some((s) => s.index === state.hover) ? state.hover : null;
  const pixels = composeMaskLayer(segs, r.width, r.height, layerOptions(hover));
  els.maskLayer.getContext("2d").putImageData(new ImageData(pixels, r.width, r.height), 0, 0);
  const lctx = els.labelLayer.getContext("2d");
  lctx.clearRect(0, 0, r.width, r.height);
  if (els.showLabels.checked) {
    // At least 12 screen pixels high, however much the picture is scaled down to fit.
    const scale = els.labelLayer.clientWidth / r.width || 1;
    const size = Math.max(Math.round(Math.max(r.width, r.height) / 45), Math.ceil(12 / scale));
    const tagged = hover == null ? segs : [segs.find((s) => s.index === hover), ...segs.filter((s) => s.index !== hover)];
    drawLabels(lctx, tagged, r.width, r.height, size);
  }
}
