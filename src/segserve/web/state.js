// What the page holds between events. One shared object rather than a variable per module, so that
// every module (and window.segserve, for tests) sees the same image, answer and request.

import { els } from "./elements.js";

export const state = {
  source: null, // { kind: "file", file, name } | { kind: "url", url, name }
  image: null, // decoded HTMLImageElement, or null when the browser cannot show it
  objectUrl: null,
  result: null, // { text, json, width, height, segments, pixels, readable }
  hover: null, // index of the highlighted segment
  controller: null,
  timer: null,
  drawQueued: false,
  imageSize: null, // { width, height }: the image's pixel grid (the masks' size once answered); viewport.js
  imageSource: null, // what the image layer is drawn from (the decoded image), or null for grey
  layers: null, // the masks at the shown size, built once per answer and size (layers.js)
  lastRequest: null, // { source, fields: [[name, value]] } of the last request sent, for the code panel
  limits: null, // the server's upload limits from /readyz, once known (server-status.js)
  tool: "none", // what a press on the picture draws: "none" | "box" | "point"; a drag pans only at "none"
  visual: null, // the visual prompts: { mode, boxes, points, box } (visual-prompts.js, prompt-fields.js)
  rerun: false, // a run was asked for while one was in flight: send it once that one is answered
};

/** Segments that pass the confidence slider (listed), and those of them that are checked (drawn). */
export function listed() {
  if (!state.result) return [];
  const min = Number(els.minConfidence.value);
  return state.result.segments.filter((s) => s.confidence >= min - 1e-9);
}
export function drawn() {
  return listed().filter((s) => s.visible && s.crop);
}
