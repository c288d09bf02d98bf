// The picture's size on screen, zoom and pan, and the before/after comparison.
//
// The canvases hold the picture at the size it is shown (times the device's pixel ratio), never at the
// photo's full size: a 36 MP photo fitted into the stage needs well under 1 MP per layer. Zoom and pan
// are one CSS transform on the whole #canvas-stack, so every layer in it (masks, labels, the prompt
// layer) stays aligned without a redraw; the image layer alone is redrawn sharper once a zoom settles.
// A drag pans only when no drawing tool is active (state.tool "none"), or with the middle button, or
// with the space bar held.

import { els } from "./elements.js";
import { state } from "./state.js";

const MAX_ZOOM = 16;
// The image layer's longest side when redrawn for a zoom: bounds its memory (4096² x 4 B = 64 MB).
const MAX_SHARP_SIDE = 4096;

const view = { zoom: 1, x: 0, y: 0 };
let onResize = () => {};
let sharpTimer = null;

/** Called with no arguments whenever the shown size changes (the picture module redraws). */
export function onShownSizeChange(fn) {
  onResize = fn;
}

/** Size the stack to fit the stage and the canvases to the shown size; draw `source` on the image layer.
 *  width x height is the image's pixel grid (the masks' size once there is an answer). */
export function fitPicture(source, width, height) {
  state.imageSize = { width, height };
  els.stack.dataset.imageWidth = String(width);
  els.stack.dataset.imageHeight = String(height);
  els.stack.hidden = false;
  els.placeholder.hidden = true;
  resetView();
  layout(source);
}

function layout(source = state.imageSource) {
  const size = state.imageSize;
  if (!size || !size.width) return;
  state.imageSource = source;
  const stage = els.stage;
  const style = getComputedStyle(stage);
  const availW = stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const maxH = window.innerHeight * (window.matchMedia("(max-width: 859px)").matches ? 0.6 : 0.72);
  const fit = Math.min(1, availW / size.width, maxH / size.height);
  const cssW = Math.max(1, Math.floor(size.width * fit));
  const cssH = Math.max(1, Math.floor(size.height * fit));
  els.stack.style.width = `${cssW}px`;
  els.stack.style.height = `${cssH}px`;
  const dpr = window.devicePixelRatio || 1;
  const dw = Math.min(size.width, Math.round(cssW * dpr));
  const dh = Math.min(size.height, Math.round(cssH * dpr));
  const changed = els.maskLayer.width !== dw || els.maskLayer.height !== dh;
  for (const c of [els.maskLayer, els.labelLayer]) {
    if (c.width !== dw) c.width = dw;
    if (c.height !== dh) c.height = dh;
  }
  drawImageLayer(dw, dh);
  if (changed) onResize();
}

/** The photo (or grey, when the browser cannot show it) on the image layer at dw x dh. */
function drawImageLayer(dw, dh) {
  const c = els.imageLayer;
  if (c.width !== dw || c.height !== dh) {
    c.width = dw;
    c.height = dh;
  }
  const ctx = c.getContext("2d");
  const src = state.imageSource;
  if (src) {
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(src, 0, 0, dw, dh);
  } else {
    ctx.fillStyle = "#d9dde3";
    ctx.fillRect(0, 0, dw, dh);
  }
}

// The stage's width follows the window and the layout: refit (layers are rebuilt once per new size).
let resizeQueued = false;
new ResizeObserver(() => {
  if (resizeQueued) return;
  resizeQueued = true;
  requestAnimationFrame(() => {
    resizeQueued = false;
    layout();
  });
}).observe(els.stage);

// --- zoom and pan -------------------------------------------------------------------------------
function apply() {
  els.stack.style.transform = view.zoom === 1 && !view.x && !view.y ? "" : `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
  els.zoomLevel.textContent = `${Math.round(view.zoom * 100)}%`;
  els.zoomOut.disabled = view.zoom <= 1;
  els.zoomReset.disabled = view.zoom === 1 && !view.x && !view.y;
  clearTimeout(sharpTimer);
  sharpTimer = setTimeout(sharpen, 250);
}

/** After a zoom settles, redraw the image layer with as many pixels as it now covers on screen. */
function sharpen() {
  const size = state.imageSize;
  if (!size || !state.imageSource) return;
  const onScreen = els.stack.offsetWidth * view.zoom * (window.devicePixelRatio || 1);
  const want = Math.min(1, onScreen / size.width, MAX_SHARP_SIDE / Math.max(size.width, size.height));
  const dw = Math.max(els.maskLayer.width, Math.round(size.width * want));
  const dh = Math.max(els.maskLayer.height, Math.round(size.height * want));
  if (dw !== els.imageLayer.width) drawImageLayer(dw, dh);
}

export function resetView() {
  view.zoom = 1;
  view.x = 0;
  view.y = 0;
  apply();
}

/** Zoom by `factor` keeping the stage point (px, py) (client coordinates) where it is. */
export function zoomBy(factor, px, py) {
  const stage = els.stage.getBoundingClientRect();
  const cx = px ?? stage.left + stage.width / 2;
  const cy = py ?? stage.top + stage.height / 2;
  const zoom = Math.min(MAX_ZOOM, Math.max(1, view.zoom * factor));
  // The stack's untransformed top-left, then the point under (cx, cy) in the stack's own pixels.
  const rect = els.stack.getBoundingClientRect();
  const ox = rect.left - view.x;
  const oy = rect.top - view.y;
  const sx = (cx - rect.left) / view.zoom;
  const sy = (cy - rect.top) / view.zoom;
  view.zoom = zoom;
  view.x = zoom === 1 ? 0 : cx - ox - sx * zoom;
  view.y = zoom === 1 ? 0 : cy - oy - sy * zoom;
  apply();
}

els.zoomIn.addEventListener("click", () => zoomBy(1.5));
els.zoomOut.addEventListener("click", () => zoomBy(1 / 1.5));
els.zoomReset.addEventListener("click", resetView);
// Ctrl/Cmd + wheel (and a trackpad's pinch, which the browser reports as one) zooms; a plain wheel
// still scrolls the page.
els.stage.addEventListener(
  "wheel",
  (e) => {
    if (!(e.ctrlKey || e.metaKey) || els.stack.hidden) return;
    e.preventDefault();
    zoomBy(Math.exp(-e.deltaY / 300), e.clientX, e.clientY);
  },
  { passive: false },
);
els.stack.addEventListener("dblclick", () => state.tool === "none" && resetView());

let spaceHeld = false;
window.addEventListener("keydown", (e) => {
  if (e.code === "Space" && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLButtonElement)) {
    spaceHeld = true;
    if (view.zoom > 1) e.preventDefault();
  }
});
window.addEventListener("keyup", (e) => {
  if (e.code === "Space") spaceHeld = false;
});

let drag = null;
els.stage.addEventListener("pointerdown", (e) => {
  const panning = e.button === 1 || (e.button === 0 && (spaceHeld || !state.tool || state.tool === "none"));
  if (!panning || view.zoom === 1 || els.stack.hidden) return;
  drag = { id: e.pointerId, x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
  els.stage.setPointerCapture(e.pointerId);
  els.stage.classList.add("panning");
  e.preventDefault();
});
els.stage.addEventListener("pointermove", (e) => {
  if (!drag || e.pointerId !== drag.id) return;
  view.x = drag.vx + e.clientX - drag.x;
  view.y = drag.vy + e.clientY - drag.y;
  apply();
});
for (const type of ["pointerup", "pointercancel"]) {
  els.stage.addEventListener(type, (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    drag = null;
    els.stage.classList.remove("panning");
  });
}

// --- before / after -----------------------------------------------------------------------------
// The slider uncovers the masks from the left: left of its position the bare photo, right of it the
// answer. A clip-path on the mask and label layers, so comparing never redraws them.
els.compare.addEventListener("input", () => {
  const cut = Number(els.compare.value);
  const clip = cut > 0 ? `inset(0 0 0 ${cut}%)` : "";
  els.maskLayer.style.clipPath = clip;
  els.labelLayer.style.clipPath = clip;
  els.compareValue.textContent = cut > 0 ? `${cut}% original` : "off";
});
