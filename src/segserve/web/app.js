// The segserve playground: pick an image, type a prompt, call POST /v1/images/segmentation, and
// look at / download what comes back. Plain ES modules, no dependencies, nothing from other hosts.

import { rleToCrop } from "./rle.js";
import {
  composeMaskLayer,
  countLabels,
  cssColor,
  cutoutPixels,
  drawLabels,
  lineWidthFor,
  segmentAt,
  segmentColor,
} from "./render.js";
import { makeZip } from "./zip.js";

const ENDPOINT = "/v1/images/segmentation";
const KEY_STORAGE = "segserve.apiKey";
const SLOW_AFTER_S = 8;

const $ = (id) => document.getElementById(id);
const els = {
  apiKey: $("api-key"),
  toggleKey: $("toggle-key"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  thumb: $("thumb"),
  fileName: $("file-name"),
  fileDetail: $("file-detail"),
  clearImage: $("clear-image"),
  urlForm: $("url-form"),
  imageUrl: $("image-url"),
  prompt: $("prompt"),
  threshold: $("opt-threshold"),
  maskThreshold: $("opt-mask-threshold"),
  maxSegments: $("opt-max-segments"),
  model: $("opt-model"),
  run: $("run"),
  cancel: $("cancel"),
  progress: $("progress"),
  progressText: $("progress-text"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorMessage: $("error-message"),
  errorHint: $("error-hint"),
  summary: $("summary"),
  labelCounts: $("label-counts"),
  dlJson: $("dl-json"),
  dlOverlay: $("dl-overlay"),
  dlCutouts: $("dl-cutouts"),
  placeholder: $("placeholder"),
  stack: $("canvas-stack"),
  imageLayer: $("image-layer"),
  maskLayer: $("mask-layer"),
  labelLayer: $("label-layer"),
  notice: $("notice"),
  viewControls: $("view-controls"),
  tooltip: $("tooltip"),
  opacity: $("opacity"),
  opacityValue: $("opacity-value"),
  minConfidence: $("min-confidence"),
  minConfidenceValue: $("min-confidence-value"),
  showOutline: $("show-outline"),
  showLabels: $("show-labels"),
  toggleAll: $("toggle-all"),
  segmentList: $("segment-list"),
  segmentsEmpty: $("segments-empty"),
};

const state = {
  source: null, // { kind: "file", file, name } | { kind: "url", url, name }
  image: null, // decoded HTMLImageElement, or null when the browser cannot show it
  objectUrl: null,
  result: null, // { text, json, width, height, segments, pixels, readable }
  hover: null, // index of the highlighted segment
  controller: null,
  timer: null,
  drawQueued: false,
};

// --- API key ------------------------------------------------------------------------------------
try {
  els.apiKey.value = localStorage.getItem(KEY_STORAGE) || "";
} catch {
  /* storage disabled: the field still works for this page */
}
els.apiKey.addEventListener("input", () => {
  try {
    localStorage.setItem(KEY_STORAGE, els.apiKey.value.trim());
  } catch {
    /* ignore */
  }
});
els.toggleKey.addEventListener("click", () => {
  const show = els.apiKey.type === "password";
  els.apiKey.type = show ? "text" : "password";
  els.toggleKey.textContent = show ? "Hide" : "Show";
  els.toggleKey.setAttribute("aria-pressed", String(show));
});

// --- image intake: button, drag-and-drop, paste, URL --------------------------------------------
els.dropzone.addEventListener("click", (e) => {
  if (e.target.closest("#clear-image")) return;
  els.fileInput.click();
});
els.dropzone.addEventListener("keydown", (e) => {
  if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    els.fileInput.click();
  }
});
els.fileInput.addEventListener("change", () => {
  const file = els.fileInput.files && els.fileInput.files[0];
  if (file) setFile(file);
});
els.clearImage.addEventListener("click", (e) => {
  e.stopPropagation();
  setSource(null);
});

for (const type of ["dragenter", "dragover"]) {
  window.addEventListener(type, (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    els.dropzone.classList.add("dragging");
  });
}
window.addEventListener("dragleave", (e) => {
  if (!e.relatedTarget) els.dropzone.classList.remove("dragging");
});
window.addEventListener("drop", (e) => {
  e.preventDefault();
  els.dropzone.classList.remove("dragging");
  const dt = e.dataTransfer;
  if (!dt) return;
  const file = [...dt.files].find((f) => f.type.startsWith("image/")) || dt.files[0];
  if (file) return setFile(file);
  const url = (dt.getData("text/uri-list") || dt.getData("text/plain") || "").split("\n")[0].trim();
  if (/^https?:\/\//i.test(url)) setUrl(url);
});

document.addEventListener("paste", (e) => {
  const cd = e.clipboardData;
  if (!cd) return;
  const item = [...cd.items].find((it) => it.kind === "file" && it.type.startsWith("image/"));
  if (item) {
    e.preventDefault();
    const file = item.getAsFile();
    const ext = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
    setFile(new File([file], file.name && file.name !== "image.png" ? file.name : `pasted.${ext}`, { type: file.type }));
    return;
  }
  const inField = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  const text = cd.getData("text/plain").trim();
  if (!inField && /^https?:\/\/\S+$/i.test(text)) {
    e.preventDefault();
    setUrl(text);
  }
});

els.urlForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const url = els.imageUrl.value.trim();
  if (!url) return;
  if (!/^https?:\/\//i.test(url) && !/^data:image\//i.test(url)) {
    showError({ title: "Not an image URL", message: "Enter an http:// or https:// address of an image, or choose a file." });
    return;
  }
  setUrl(url);
});

function setFile(file) {
  setSource({ kind: "file", file, name: file.name || "image" });
}

function setUrl(url) {
  els.imageUrl.value = url;
  let name = "image";
  try {
    name = decodeURIComponent(new URL(url).pathname.split("/").pop()) || "image";
  } catch {
    /* keep "image" */
  }
  setSource({ kind: "url", url, name });
}

async function setSource(source) {
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  state.source = source;
  state.image = null;
  clearResult();
  hideError();
  els.fileInput.value = "";
  const empty = els.dropzone.querySelector(".dropzone-empty");
  const filled = els.dropzone.querySelector(".dropzone-file");
  empty.hidden = !!source;
  filled.hidden = !source;
  if (!source) {
    els.imageUrl.value = "";
    showPlaceholder();
    return;
  }
  els.fileName.textContent = source.name;
  els.fileDetail.textContent = source.kind === "file" ? formatBytes(source.file.size) : "from URL";
  els.thumb.removeAttribute("src");
  els.thumb.hidden = true;
  let src;
  if (source.kind === "file") {
    state.objectUrl = URL.createObjectURL(source.file);
    src = state.objectUrl;
  } else {
    src = source.url;
  }
  const img = await loadImage(src, source.kind === "url");
  if (state.source !== source) return; // replaced while loading
  state.image = img;
  if (img) {
    els.thumb.src = img.src;
    els.thumb.hidden = false;
    els.fileDetail.textContent += ` · ${img.naturalWidth} × ${img.naturalHeight}`;
    drawPreview();
  } else {
    showPlaceholder(
      source.kind === "url"
        ? "The browser cannot preview this URL; the server will fetch it when you run."
        : "This browser cannot display this image format; the server may still read it.",
    );
  }
}

/** Decode an image; for URLs ask for CORS first so that its pixels can be read for cutouts. */
async function loadImage(src, crossOrigin) {
  const attempt = async (cors) => {
    const img = new Image();
    if (cors) img.crossOrigin = "anonymous";
    img.decoding = "async";
    img.src = src;
    await img.decode();
    return img;
  };
  try {
    return await attempt(crossOrigin);
  } catch {
    if (!crossOrigin) return null;
    try {
      return await attempt(false);
    } catch {
      return null;
    }
  }
}

// --- prompt -----------------------------------------------------------------------------------
for (const chip of document.querySelectorAll(".chip")) {
  chip.addEventListener("click", () => {
    els.prompt.value = chip.dataset.prompt;
    els.prompt.focus();
    updateChips();
  });
}
els.prompt.addEventListener("input", updateChips);
els.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    run();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run();
});
function updateChips() {
  for (const chip of document.querySelectorAll(".chip")) {
    chip.classList.toggle("active", chip.dataset.prompt === els.prompt.value.trim());
  }
}
updateChips();

// --- the request --------------------------------------------------------------------------------
els.run.addEventListener("click", run);
els.cancel.addEventListener("click", () => state.controller && state.controller.abort());

async function run() {
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

const STATUS_TEXT = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  413: "Too large",
  415: "Unsupported format",
  422: "Unreadable image",
  429: "Busy",
  500: "Server error",
  502: "Bad gateway",
  503: "Not ready",
  504: "Timed out",
};

const HINTS = {
  invalid_api_key: "Enter a valid key in the API key field at the top of the page.",
  missing_field: "Fill in the field named above.",
  unknown_model: "Change the model under Advanced options.",
  invalid_prompt: "Use fewer or shorter concepts, separated by commas.",
  invalid_parameter: "Check the values under Advanced options.",
  invalid_image_url: "Enter an http:// or https:// image address, or upload the file instead.",
  image_url_forbidden: "The server does not fetch private or local addresses; upload the file instead.",
  image_url_unreachable: "Check the address, or download the image and upload the file.",
  image_too_large: "Use a smaller image.",
  unsupported_image_format: "Convert the image to JPEG, PNG or WebP.",
  invalid_image: "The file is not a readable image; choose another.",
  model_not_ready: "The model is still loading; try again in a moment.",
  timeout: "The server took too long; try a smaller image or fewer concepts.",
};

function describeApiError(res, json, text) {
  const status = res.status;
  const head = `${status} ${STATUS_TEXT[status] || res.statusText || "Error"}`;
  const err = json && typeof json === "object" ? json.error : null;
  if (err && typeof err === "object" && err.message) {
    let hint = HINTS[err.code] || "";
    if (err.code === "server_busy") {
      const after = res.headers.get("Retry-After");
      hint = after ? `The server is busy; try again in ${after} s.` : "The server is busy; try again shortly.";
    }
    const extra = [err.code && `code: ${err.code}`, err.param && `field: ${err.param}`].filter(Boolean).join(" · ");
    return { title: head, message: err.message, hint: [hint, extra].filter(Boolean).join("  —  ") };
  }
  const snippet = (text || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 300);
  return { title: head, message: snippet || "The server answered without an error message." };
}

function showError({ title, message, hint = "", level = "error" }) {
  els.errorTitle.textContent = title;
  els.errorMessage.textContent = message;
  els.errorHint.textContent = hint;
  els.errorHint.hidden = !hint;
  els.error.classList.toggle("info", level === "info");
  els.error.hidden = false;
}

function hideError() {
  els.error.hidden = true;
}

// --- the result ---------------------------------------------------------------------------------
function showResult(json, text) {
  const segs = json.segments;
  const sized = segs.find((s) => s.mask && Array.isArray(s.mask.size));
  const img = state.image;
  const height = sized ? sized.mask.size[0] : img ? img.naturalHeight : 0;
  const width = sized ? sized.mask.size[1] : img ? img.naturalWidth : 0;
  const segments = segs.map((s, index) => {
    const crop = s.mask && typeof s.mask.counts === "string" ? rleToCrop(s.mask.counts, height, width) : null;
    return {
      index,
      id: s.id ?? index + 1,
      label: String(s.label ?? ""),
      confidence: Number(s.confidence) || 0,
      bbox: Array.isArray(s.bbox) ? s.bbox.map(Number) : [0, 0, 0, 0],
      crop,
      area: crop ? crop.area : null,
      color: segmentColor(index),
      visible: true,
    };
  });
  state.result = { text, json, width, height, segments, pixels: null, readable: false };
  state.hover = null;

  // The image layer, at the masks' resolution.
  for (const c of [els.imageLayer, els.maskLayer, els.labelLayer]) {
    c.width = width;
    c.height = height;
  }
  const ctx = els.imageLayer.getContext("2d", { willReadFrequently: true });
  const notes = [];
  if (img) {
    ctx.drawImage(img, 0, 0, width, height);
    if (img.naturalWidth !== width || img.naturalHeight !== height) {
      notes.push(
        `The browser shows this image at ${img.naturalWidth} × ${img.naturalHeight}, the server read it at ` +
          `${width} × ${height}; the picture is scaled to match the masks.`,
      );
    }
    try {
      state.result.pixels = ctx.getImageData(0, 0, width, height).data;
      state.result.readable = true;
    } catch {
      notes.push("The image's host does not allow reading its pixels, so cutouts and the overlay PNG are off. Upload the file to get them.");
    }
  } else {
    ctx.fillStyle = "#d9dde3";
    ctx.fillRect(0, 0, width, height);
    notes.push("The browser cannot display this image, so masks are shown on grey and cutouts are off.");
  }
  if (segments.length && segments.every((s) => !s.crop)) notes.push("This answer has no masks (boxes only).");
  showNotice(notes.join(" "));

  els.placeholder.hidden = true;
  els.stack.hidden = false;
  els.viewControls.hidden = false;
  els.dlJson.disabled = false;
  els.toggleAll.disabled = segments.length === 0;
  els.toggleAll.checked = true;
  renderList();
  scheduleDraw();
  // On a phone the picture is below the form: bring it into view.
  if (window.matchMedia("(max-width: 859px)").matches) els.summary.scrollIntoView({ behavior: "smooth", block: "start" });
}

function clearResult() {
  state.result = null;
  state.hover = null;
  els.segmentList.replaceChildren();
  els.segmentsEmpty.hidden = false;
  els.segmentsEmpty.textContent = "No segments yet.";
  els.summary.textContent = "Result";
  els.labelCounts.replaceChildren();
  els.toggleAll.disabled = true;
  els.viewControls.hidden = true;
  els.tooltip.hidden = true;
  for (const b of [els.dlJson, els.dlOverlay, els.dlCutouts]) b.disabled = true;
  els.dlCutouts.textContent = "Cutouts .zip";
  showNotice("");
}

function showPlaceholder(message) {
  els.stack.hidden = true;
  els.placeholder.hidden = false;
  const [first, second] = els.placeholder.querySelectorAll("p");
  if (message) {
    first.textContent = message;
    second.textContent = "";
  } else {
    first.innerHTML = "Choose an image and press <strong>Run</strong>.";
    second.textContent = "Masks, outlines and labels appear here.";
  }
}

function drawPreview() {
  const img = state.image;
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  for (const c of [els.imageLayer, els.maskLayer, els.labelLayer]) {
    c.width = w;
    c.height = h;
  }
  els.imageLayer.getContext("2d").drawImage(img, 0, 0);
  els.placeholder.hidden = true;
  els.stack.hidden = false;
}

function showNotice(text) {
  els.notice.textContent = text;
  els.notice.hidden = !text;
}

/** Segments that pass the confidence slider (listed), and those of them that are checked (drawn). */
function listed() {
  if (!state.result) return [];
  const min = Number(els.minConfidence.value);
  return state.result.segments.filter((s) => s.confidence >= min - 1e-9);
}
function drawn() {
  return listed().filter((s) => s.visible && s.crop);
}

function renderList() {
  const r = state.result;
  const segs = listed();
  const items = segs.map((s) => {
    const li = document.createElement("li");
    li.className = "segment";
    li.dataset.id = String(s.id);
    li.dataset.index = String(s.index);
    const color = cssColor(s.color);
    const areaText =
      s.area == null ? "no mask" : `${formatPercent(s.area / (r.width * r.height))} · ${s.area.toLocaleString("en-US")} px`;
    li.innerHTML = `
      <input type="checkbox" class="seg-visible" aria-label="Show segment ${s.id}">
      <span class="swatch" style="--c: ${color}"></span>
      <span class="seg-main">
        <span class="seg-label"></span>
        <span class="seg-meta">#${s.id} · <span class="seg-area">${areaText}</span></span>
      </span>
      <span class="seg-conf" title="confidence">
        <span class="conf-value" title="${s.confidence}">${s.confidence.toFixed(2)}</span>
        <span class="conf-bar"><span style="width: ${Math.round(s.confidence * 100)}%; background: ${color}"></span></span>
      </span>
      <button type="button" class="btn btn-ghost btn-icon seg-cutout" title="Download #${s.id} as a transparent PNG"
        aria-label="Download segment ${s.id} as PNG"><svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 4v11m0 0-4-4m4 4 4-4M5 19h14"/></svg></button>`;
    li.querySelector(".seg-label").textContent = s.label;
    const box = li.querySelector(".seg-visible");
    box.checked = s.visible;
    box.addEventListener("change", () => {
      s.visible = box.checked;
      li.classList.toggle("off", !s.visible);
      syncToggleAll();
      scheduleDraw();
    });
    li.classList.toggle("off", !s.visible);
    const cut = li.querySelector(".seg-cutout");
    cut.disabled = !r.readable || !s.crop || s.crop.width === 0;
    cut.addEventListener("click", () => downloadCutout(s));
    li.addEventListener("mouseenter", () => setHover(s.index));
    li.addEventListener("mouseleave", () => setHover(null));
    li.addEventListener("focusin", () => setHover(s.index));
    li.addEventListener("focusout", () => setHover(null));
    return li;
  });
  els.segmentList.replaceChildren(...items);
  els.segmentsEmpty.hidden = segs.length > 0;
  if (!segs.length) {
    els.segmentsEmpty.textContent = r.segments.length
      ? "All segments are below the confidence filter."
      : "Nothing found. Try another prompt, or lower the threshold under Advanced options.";
  }
  // Summary: "N objects" and a count per label, over what passes the confidence filter.
  const hiddenByFilter = r.segments.length - segs.length;
  els.summary.textContent =
    `${segs.length} object${segs.length === 1 ? "" : "s"}` + (hiddenByFilter ? ` (of ${r.segments.length})` : "");
  els.labelCounts.replaceChildren(
    ...countLabels(segs).map(([label, n]) => {
      const span = document.createElement("span");
      span.className = "count-chip";
      span.textContent = `${label} `;
      const b = document.createElement("b");
      b.textContent = String(n);
      span.append(b);
      return span;
    }),
  );
  syncToggleAll();
}

function syncToggleAll() {
  const segs = listed();
  const on = segs.filter((s) => s.visible).length;
  els.toggleAll.checked = on === segs.length && segs.length > 0;
  els.toggleAll.indeterminate = on > 0 && on < segs.length;
  const anyDrawn = drawn().length > 0;
  els.dlOverlay.disabled = !state.result || !state.result.readable;
  els.dlCutouts.disabled = !state.result || !state.result.readable || !anyDrawn;
  els.dlCutouts.textContent = anyDrawn ? `Cutouts .zip (${drawn().length})` : "Cutouts .zip";
}

els.toggleAll.addEventListener("change", () => {
  for (const s of listed()) s.visible = els.toggleAll.checked;
  renderList();
  scheduleDraw();
});

function setHover(index) {
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

for (const input of [els.opacity, els.minConfidence, els.showOutline, els.showLabels]) {
  input.addEventListener("input", () => {
    els.opacityValue.textContent = Number(els.opacity.value).toFixed(2);
    els.minConfidenceValue.textContent = Number(els.minConfidence.value).toFixed(2);
    if (input === els.minConfidence && state.result) renderList();
    scheduleDraw();
  });
}

function scheduleDraw() {
  if (state.drawQueued) return;
  state.drawQueued = true;
  requestAnimationFrame(() => {
    state.drawQueued = false;
    draw();
  });
}

function layerOptions(hover) {
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

// --- downloads ----------------------------------------------------------------------------------
els.dlJson.addEventListener("click", () => {
  if (!state.result) return;
  saveBlob(new Blob([state.result.text], { type: "application/json" }), `${baseName()}-segments.json`);
});

els.dlOverlay.addEventListener("click", async () => {
  const r = state.result;
  if (!r || !r.readable) return;
  const canvas = document.createElement("canvas");
  canvas.width = r.width;
  canvas.height = r.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(els.imageLayer, 0, 0);
  const segs = drawn();
  const masks = document.createElement("canvas");
  masks.width = r.width;
  masks.height = r.height;
  const pixels = composeMaskLayer(segs, r.width, r.height, layerOptions(null));
  masks.getContext("2d").putImageData(new ImageData(pixels, r.width, r.height), 0, 0);
  ctx.drawImage(masks, 0, 0);
  if (els.showLabels.checked) drawLabels(ctx, segs, r.width, r.height);
  saveBlob(await canvasToPng(canvas), `${baseName()}-overlay.png`);
});

els.dlCutouts.addEventListener("click", async () => {
  const segs = drawn().filter((s) => s.crop.width > 0);
  if (!segs.length || !state.result.readable) return;
  const files = [];
  for (const s of segs) {
    const blob = await cutoutPng(s);
    files.push({ name: cutoutName(s), data: new Uint8Array(await blob.arrayBuffer()) });
  }
  saveBlob(new Blob([makeZip(files)], { type: "application/zip" }), `${baseName()}-cutouts.zip`);
});

async function downloadCutout(seg) {
  if (!state.result || !state.result.readable || !seg.crop || !seg.crop.width) return;
  saveBlob(await cutoutPng(seg), cutoutName(seg));
}

/** The segment's box of the image, transparent outside the mask. */
async function cutoutPng(seg) {
  const r = state.result;
  const { crop } = seg;
  const canvas = document.createElement("canvas");
  canvas.width = crop.width;
  canvas.height = crop.height;
  const rgba = cutoutPixels(r.pixels, r.width, crop);
  canvas.getContext("2d").putImageData(new ImageData(rgba, crop.width, crop.height), 0, 0);
  return canvasToPng(canvas);
}

function cutoutName(seg) {
  const label = seg.label.replace(/[^\p{L}\p{N}_-]+/gu, "-").replace(/^-+|-+$/g, "") || "segment";
  return `${baseName()}-${String(seg.id).padStart(2, "0")}-${label}.png`;
}

/** PNG of a canvas, encoded now. (`toBlob` / `convertToBlob` may be put off by the browser until the
 *  page is idle, which in a background or headless tab is a second or more per image.) */
function canvasToPng(canvas) {
  const url = canvas.toDataURL("image/png");
  const bin = atob(url.slice(url.indexOf(",") + 1));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: "image/png" });
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

function baseName() {
  const name = (state.source && state.source.name) || "image";
  return name.replace(/\.[^.]+$/, "").replace(/[^\p{L}\p{N}_-]+/gu, "-").slice(0, 60) || "image";
}

// --- helpers ------------------------------------------------------------------------------------
function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function formatPercent(f) {
  const p = f * 100;
  return p >= 10 ? `${p.toFixed(0)}%` : p >= 0.1 ? `${p.toFixed(1)}%` : "<0.1%";
}

// For tests and the curious: the current state, read-only use please.
window.segserve = { state };
