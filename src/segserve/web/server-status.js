// Know before you wait: the server's state from GET /readyz (loading, ready, failed with its message)
// in the top bar, polled until it settles, and the upload limits it names, shown under the drop zone
// and checked by image-input.js and request.js before anything is sent.

import { els } from "./elements.js";
import { formatBytes } from "./image-input.js";
import { state } from "./state.js";

const POLL_MS = 2000;

function show(kind, text) {
  els.serverStatus.dataset.state = kind;
  els.serverStatusText.textContent = text;
}

export async function checkServer() {
  let res;
  let body = null;
  try {
    res = await fetch("/readyz", { cache: "no-store" });
    body = await res.json().catch(() => null);
  } catch {
    show("down", "Server unreachable — retrying");
    setTimeout(checkServer, POLL_MS * 2);
    return;
  }
  if (res.ok && body) {
    show("ready", `Ready · ${body.model || "model"}`);
    if (body.limits) showLimits(body.limits);
    return;
  }
  const message = (body && body.error && body.error.message) || `HTTP ${res.status}`;
  if (/failed to load/i.test(message)) {
    // Nothing will change without the operator: say so once, and stop polling.
    show("failed", `Model failed: ${message}`);
    return;
  }
  show("loading", /shutting down/i.test(message) ? "Server shutting down" : "Model loading…");
  setTimeout(checkServer, POLL_MS);
}

function showLimits(limits) {
  state.limits = limits;
  const mp = (limits.max_image_pixels / 1e6).toFixed(limits.max_image_pixels % 1e6 ? 1 : 0);
  els.limits.textContent = `Up to ${formatBytes(limits.max_image_bytes)} and ${mp} MP per image, ${limits.max_concepts} concepts per prompt`;
  els.limits.hidden = false;
}

checkServer();
