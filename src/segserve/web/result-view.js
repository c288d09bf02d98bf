// The result panel as a whole: turning the API's answer into the page's segments, the picture's
// image layer, the notice under it, the placeholder, and the view controls.

import { els } from "./elements.js";
import { scheduleDraw } from "./picture.js";
import { segmentColor } from "./render.js";
import { rleToCrop } from "./rle.js";
import { renderList } from "./segment-list.js";
import { state } from "./state.js";

export function showResult(json, text) {
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

export function clearResult() {
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

export function showPlaceholder(message) {
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

export function drawPreview() {
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

// The view controls change only how the answer in hand is shown: re-list and redraw, never re-request.
for (const input of [els.opacity, els.minConfidence, els.showOutline, els.showLabels]) {
  input.addEventListener("input", () => {
    els.opacityValue.textContent = Number(els.opacity.value).toFixed(2);
    els.minConfidenceValue.textContent = Number(els.minConfidence.value).toFixed(2);
    if (input === els.minConfidence && state.result) renderList();
    scheduleDraw();
  });
}
