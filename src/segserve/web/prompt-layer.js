// The prompt layer: an SVG over the picture (inside #canvas-stack, above the label layer) that shows
// the visual prompts, green positive and red negative, and turns pointer gestures into prompts.
//
// SVG rather than another canvas: its viewBox is the image's pixel grid, so shapes stay sharp at any
// zoom, and outlines keep one screen width (vector-effect) without redrawing on every resize.
// Pointer Events cover mouse, pen and touch alike. Pointer positions are mapped through the layer's
// getBoundingClientRect(), so a zoom or pan that transforms the whole #canvas-stack keeps them right.

import { activePrompts } from "./prompt-fields.js";
import { state } from "./state.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const layer = document.getElementById("prompt-layer");

// A press that moves less than this (screen pixels) is a click, not a drag.
const DRAG_PX = 5;
// Holding a touch or pen this long without moving marks the prompt negative (there is no right button).
const LONG_PRESS_MS = 500;
// Point markers: this radius on screen, whatever the picture's scale.
const POINT_PX = 7;

let handlers = { box: () => {}, point: () => {}, negative: () => false };
let spaceHeld = false; // Space + drag pans the picture (viewport.js), so it draws nothing here
let gesture = null; // { id, start: [x, y] image px, startClient, end, dragging, negative, longPressed, timer }

/** The image's pixel grid (the answer's masks once there is one), not the canvases' shown size. */
export function imageSize() {
  const size = state.imageSize;
  return size && size.width ? [size.width, size.height] : [0, 0];
}

/** A pointer event's position in image pixels (continuous), clamped to the image. */
function toImage(e) {
  const rect = layer.getBoundingClientRect();
  const [w, h] = imageSize();
  const x = ((e.clientX - rect.left) / rect.width) * w;
  const y = ((e.clientY - rect.top) / rect.height) * h;
  return [Math.min(Math.max(x, 0), w), Math.min(Math.max(y, 0), h)];
}

/**
 * Start listening. `box(xyxy, positive)` gets each box dragged, `point(x, y, positive)` each click
 * (single-object mode only); `negative(event)` says whether the toggle or a modifier asks for negative.
 */
export function attachPointer(callbacks) {
  handlers = callbacks;
}

layer.addEventListener("contextmenu", (e) => {
  if (state.tool !== "none") e.preventDefault(); // right-click is a negative point, not the menu
});

window.addEventListener("keydown", (e) => {
  if (e.code === "Space") spaceHeld = true;
});
window.addEventListener("keyup", (e) => {
  if (e.code === "Space") spaceHeld = false;
});

layer.addEventListener("pointerdown", (e) => {
  if (state.tool === "none" || gesture || spaceHeld || e.button === 1 || e.button > 2) return;
  e.preventDefault();
  layer.setPointerCapture(e.pointerId);
  const start = toImage(e);
  gesture = {
    id: e.pointerId,
    start,
    end: start,
    startClient: [e.clientX, e.clientY],
    dragging: false,
    negative: e.button === 2 || handlers.negative(e),
    longPressed: false,
    timer: null,
  };
  if (e.pointerType !== "mouse") {
    const g = gesture;
    g.timer = setTimeout(() => {
      if (gesture !== g || g.dragging) return;
      g.negative = true;
      g.longPressed = true;
      render();
    }, LONG_PRESS_MS);
  }
  render();
});

layer.addEventListener("pointermove", (e) => {
  if (!gesture || e.pointerId !== gesture.id) return;
  gesture.end = toImage(e);
  const [cx, cy] = gesture.startClient;
  if (!gesture.dragging && Math.hypot(e.clientX - cx, e.clientY - cy) >= DRAG_PX) {
    gesture.dragging = true;
    clearTimeout(gesture.timer);
  }
  if (gesture.dragging) render();
});

layer.addEventListener("pointerup", (e) => {
  if (!gesture || e.pointerId !== gesture.id) return;
  const g = endGesture();
  g.end = toImage(e);
  const negative = g.negative || handlers.negative(e);
  if (g.dragging) {
    const [w, h] = imageSize();
    const xs = [g.start[0], g.end[0]].map((v) => Math.min(Math.max(Math.round(v), 0), w));
    const ys = [g.start[1], g.end[1]].map((v) => Math.min(Math.max(Math.round(v), 0), h));
    const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    if (box[2] > box[0] && box[3] > box[1]) handlers.box(box, !negative);
  } else if (state.tool === "point") {
    // A click names a pixel: its column and row, always inside the image.
    const [w, h] = imageSize();
    const x = Math.min(Math.floor(g.start[0]), w - 1);
    const y = Math.min(Math.floor(g.start[1]), h - 1);
    handlers.point(x, y, !negative);
  }
  render();
});

for (const type of ["pointercancel", "lostpointercapture"]) {
  layer.addEventListener(type, (e) => {
    if (gesture && e.pointerId === gesture.id) {
      endGesture();
      render();
    }
  });
}

/** Drop a drag in progress (Escape). Returns whether there was one. */
export function cancelGesture() {
  if (!gesture) return false;
  endGesture();
  render();
  return true;
}

function endGesture() {
  const g = gesture;
  clearTimeout(g.timer);
  gesture = null;
  return g;
}

/** Draw state.visual's prompts, numbered as the list numbers them, and the drag in progress. */
export function render() {
  const [w, h] = imageSize();
  layer.setAttribute("viewBox", `0 0 ${w || 1} ${h || 1}`);
  layer.dataset.tool = state.tool;
  const scale = w ? layer.getBoundingClientRect().width / w || 1 : 1;
  const shapes = activePrompts(state.visual).map((p, i) => shape(p, i + 1, scale));
  if (gesture && (gesture.dragging || state.tool === "point")) {
    const positive = !gesture.negative;
    if (gesture.dragging) {
      const [x0, y0] = gesture.start;
      const [x1, y1] = gesture.end;
      const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
      shapes.push(shape({ kind: "box", box, positive }, null, scale, "draft"));
    } else {
      shapes.push(shape({ kind: "point", x: gesture.start[0], y: gesture.start[1], positive }, null, scale, "draft"));
    }
  }
  layer.replaceChildren(...shapes);
}

function shape(p, n, scale, extra = "") {
  const g = el("g", { class: `vp ${p.positive ? "pos" : "neg"} ${extra}`.trim() });
  let tagX;
  let tagY;
  if (p.kind === "box") {
    const [x0, y0, x1, y1] = p.box;
    g.append(el("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "vp-halo" }));
    g.append(el("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "vp-shape" }));
    [tagX, tagY] = [x0, y0];
  } else {
    const r = POINT_PX / scale;
    g.append(el("circle", { cx: p.x, cy: p.y, r, class: "vp-shape vp-dot" }));
    // A minus or plus inside the dot, so the sign does not rest on colour alone.
    const d = r * 0.5;
    const bar = `M${p.x - d} ${p.y}H${p.x + d}`;
    g.append(el("path", { d: p.positive ? `${bar}M${p.x} ${p.y - d}V${p.y + d}` : bar, class: "vp-sign" }));
    [tagX, tagY] = [p.x + r, p.y - r];
  }
  if (n != null) {
    const size = 12 / scale;
    // Above the shape, or just inside it when that would leave the picture.
    const y = tagY - 3 / scale < size ? tagY + size + 2 / scale : tagY - 3 / scale;
    const text = el("text", { x: tagX + 3 / scale, y, class: "vp-tag", "font-size": size });
    text.textContent = String(n);
    g.append(text);
  }
  return g;
}

function el(name, attrs) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// Point sizes and tags are in screen pixels: redraw when the picture's shown size changes.
new ResizeObserver(() => render()).observe(layer);
