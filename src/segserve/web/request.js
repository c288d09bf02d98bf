// The one API call: POST the image, prompt and options, show progress while it runs, and hand the
// answer to the result view or the error box.

import { els } from "./elements.js";
import { describeApiError, hideError, showError } from "./errors.js";
import { visualFields } from "./prompt-fields.js";
import { updateCode } from "./code-panel.js";
import { revealResult, showResult } from "./result-view.js";
import { state } from "./state.js";

const ENDPOINT = "/v1/images/segmentation";
// Past this, the progress line says that a CPU can take a minute, so a long wait does not look like a hang.
const SLOW_AFTER_S = 8;

els.run.addEventListener("click", run);
els.cancel.addEventListener("click", () => {
  state.rerun = false;
  if (state.controller) state.controller.abort();
});

export async function run() {
  if (state.controller) {
    // A change made while a request runs (another click on the picture) is sent once it is answered.
    state.rerun = true;
    return;
  }
  hideError();
  if (!state.source) {
    showError({ title: "No image yet", message: "Choose an image file, drop or paste one, or enter its URL." });
    return;
  }
  const visual = visualFields(state.visual, els.prompt.value);
  if (visual.error) {
    showError(visual.error);
    return;
  }
  const form = new FormData();
  form.append("model", els.model.value.trim() || "sam3");
  form.append("prompt", visual.prompt);
  for (const [field, value] of visual.fields) form.append(field, value);
  if (state.source.kind === "file") form.append("image", state.source.file, state.source.name);
  else form.append("image", state.source.url);
  for (const [field, input] of [
    ["threshold", els.threshold],
    ["mask_threshold", els.maskThreshold],
    ["max_segments", els.maxSegments],
  ]) {
    if (input.value.trim() !== "") form.append(field, input.value.trim());
  }
  const concepts = String(form.get("prompt") || "").split(/[,，、;；]/).filter((c) => c.trim()).length;
  if (state.limits && concepts > state.limits.max_concepts) {
    showError({
      title: "Too many concepts",
      message: `The prompt has ${concepts} concepts; this server takes up to ${state.limits.max_concepts} per request.`,
      hint: "Split it over several runs.",
    });
    return;
  }
  state.lastRequest = { source: state.source, fields: [...form.entries()].filter(([k]) => k !== "image").map(([k, v]) => [k, String(v)]) };
  updateCode();
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;

  const controller = new AbortController();
  state.controller = controller;
  const source = state.source;
  let answered = false;
  setBusy(true);
  try {
    const started = performance.now();
    const res = await fetch(ENDPOINT, { method: "POST", headers, body: form, signal: controller.signal });
    const text = await res.text();
    showTiming(res, performance.now() - started);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON: handled below */
    }
    if (!res.ok) {
      showError(describeApiError(res, json, text));
      if (res.status === 401) flagKey();
      return;
    }
    if (!json || !Array.isArray(json.segments)) {
      showError({ title: "Unexpected answer", message: "The server answered 200 but not with a segmentation result." });
      return;
    }
    if (state.source !== source) return; // the image changed meanwhile
    showResult(json, text);
    answered = true;
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
    // After the progress bar above has gone, so that the heading stays where it is scrolled to.
    if (answered && state.source === source) revealResult();
    if (state.rerun) {
      state.rerun = false;
      run();
    }
  }
}

/** The key as typed, less a pasted "Bearer " scheme (the page adds its own). */
function apiKey() {
  return els.apiKey.value.trim().replace(/^bearer\s+/i, "").trim();
}

/** After a 401: the key field, focused and marked, until it is edited. */
function flagKey() {
  els.apiKey.setAttribute("aria-invalid", "true");
  els.apiKey.classList.add("invalid");
  els.apiKey.focus();
}
els.apiKey.addEventListener("input", () => {
  els.apiKey.removeAttribute("aria-invalid");
  els.apiKey.classList.remove("invalid");
});

/** "Server 412 ms · total 530 ms": the server's share from its Server-Timing header, and the whole trip. */
function showTiming(res, totalMs) {
  const match = /(?:^|,)\s*app;dur=([\d.]+)/.exec(res.headers.get("Server-Timing") || "");
  const fmt = (ms) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
  els.timing.textContent = match ? `Server ${fmt(Number(match[1]))} · total ${fmt(totalMs)}` : `Total ${fmt(totalMs)}`;
  els.timing.title = "Server: the time segserve spent (its Server-Timing header); total: as seen by this page, upload and download included";
  els.timing.hidden = false;
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
