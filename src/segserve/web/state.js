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
