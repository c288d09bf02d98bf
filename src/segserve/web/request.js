// The one API call: POST the image, prompt and options, show progress while it runs, and hand the
// answer to the result view or the error box.

import { els } from "./elements.js";
import { describeApiError, hideError, showError } from "./errors.js";
import { showResult } from "./result-view.js";
import { state } from "./state.js";

const ENDPOINT = "/v1/images/segmentation";
// Past this, the progress line says that a CPU can take a minute, so a long wait does not look like a hang.
const SLOW_AFTER_S = 8;

els.run.addEventListener("click", run);
els.cancel.addEventListener("click", () => state.controller && state.controller.abort());

export async function run() {
  if (state.controller) return; // already running
  hideError();
  if (!state.source) {
    showError({ title: "No image yet", message: "Choose an image file, drop or paste one, or enter its URL." });
    return;
  }
  const form = new FormData();
  form.append("model", els.model.value.trim() || "sam3");
  form.append("prompt", els.prompt.value);
  if (state.source.kind === "file") form.append("image", state.source.file, state.source.name);
  else form.append("image", state.source.url);
  for (const [field, input] of [
    ["threshold", els.threshold],
    ["mask_threshold", els.maskThreshold],
    ["max_segments", els.maxSegments],
  ]) {
    if (input.value.trim() !== "") form.append(field, input.value.trim());
  }
  const headers = {};
  const key = els.apiKey.value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;

  const controller = new AbortController();
  state.controller = controller;
  const source = state.source;
  setBusy(true);
  try {
    const res = await fetch(ENDPOINT, { method: "POST", headers, body: form, signal: controller.signal });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON: handled below */
    }
    if (!res.ok) {
      showError(describeApiError(res, json, text));
      return;
    }
    if (!json || !Array.isArray(json.segments)) {
      showError({ title: "Unexpected answer", message: "The server answered 200 but not with a segmentation result." });
      return;
    }
    if (state.source !== source) return; // the image changed meanwhile
    showResult(json, text);
  } catch (err) {
    if (err.name === "AbortError") {
      showError({ title: "Cancelled", message: "The request was cancelled; the server may still finish it.", level: "info" });
    } else if (err instanceof TypeError) {
      showError({
        title: "Network error",
        message: "Could not reach the server. Is segserve still running?",
        hint: String(err.message || ""),
      });
    } else {
      showError({ title: "Something went wrong", message: String(err.message || err) });
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  els.run.disabled = busy;
  els.run.textContent = busy ? "Running…" : "Run";
  els.run.setAttribute("aria-busy", String(busy));
  els.cancel.hidden = !busy;
  els.progress.hidden = !busy;
  document.body.classList.toggle("busy", busy);
  clearInterval(state.timer);
  if (!busy) return;
  const start = performance.now();
  const tick = () => {
    const s = Math.floor((performance.now() - start) / 1000);
    els.progressText.textContent =
      s < SLOW_AFTER_S ? `Segmenting… ${s} s` : `Segmenting… ${s} s — on a CPU this can take a minute`;
  };
  tick();
  state.timer = setInterval(tick, 500);
}
