// The result panel as a whole: turning the API's answer into the page's segments, the picture's
// image layer, the notice under it, the placeholder, and the view controls.

import { els } from "./elements.js";
import { runsOf } from "./layers.js";
import { scheduleDraw } from "./picture.js";
import { countLabels, segmentColor } from "./render.js";
import { renderList } from "./segment-list.js";
import { state } from "./state.js";
import { fitPicture } from "./viewport.js";

export function showResult(json, text) {
  const segs = json.segments;
  const sized = segs.find((s) => s.mask && Array.isArray(s.mask.size));
  const img = state.image;
  const height = sized ? sized.mask.size[0] : img ? img.naturalHeight : 0;
  const width = sized ? sized.mask.size[1] : img ? img.naturalWidth : 0;
  const segments = segs.map((s, index) => {
    const seg = {
      index,
      id: s.id ?? index + 1,
      label: String(s.label ?? ""),
      confidence: Number(s.confidence) || 0,
      bbox: Array.isArray(s.bbox) ? s.bbox.map(Number) : [0, 0, 0, 0],
      counts: s.mask && typeof s.mask.counts === "string" ? s.mask.counts : null,
      crop: null,
      area: null,
      color: segmentColor(index),
      visible: true,
    };
    if (seg.counts) {
      // The area from the runs (the ones' lengths), the box from the answer: no mask is unpacked here.
      const runs = runsOf(seg);
      let area = 0;
      for (let i = 1; i < runs.length; i += 2) area += runs[i];
      seg.area = Math.min(area, width * height);
      const [x1, y1, x2, y2] = seg.bbox;
      seg.crop = { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1) };
    }
    return seg;
  });
  state.result = { text, json, width, height, segments, readable: false };
  state.hover = null;
  state.layers = null;

  const notes = [];
  fitPicture(img, width, height);
  if (img) {
    if (img.naturalWidth !== width || img.naturalHeight !== height) {
      notes.push(
        `The browser shows this image at ${img.naturalWidth} × ${img.naturalHeight}, the server read it at ` +
          `${width} × ${height}; the picture is scaled to match the masks.`,
      );
    }
    try {
      els.imageLayer.getContext("2d").getImageData(0, 0, 1, 1); // throws when another host's image taints it
      state.result.readable = true;
    } catch {
      notes.push("The image's host does not allow reading its pixels, so cutouts and the overlay PNG are off. Upload the file to get them.");
    }
  } else {
    notes.push("The browser cannot display this image, so masks are shown on grey and cutouts are off.");
  }
  if (segments.length && segments.every((s) => !s.crop)) notes.push("This answer has no masks (boxes only).");
  showNotice(notes.join(" "));

  els.viewControls.hidden = false;
  els.dlJson.disabled = false;
  els.toggleAll.disabled = segments.length === 0;
  els.toggleAll.checked = true;
  renderList();
  scheduleDraw();
  const counts = countLabels(segments).map(([label, n]) => `${label} ${n}`).join(", ");
  const found = `${segments.length} segment${segments.length === 1 ? "" : "s"} found`;
  els.stack.setAttribute("aria-label", segments.length ? `The image with ${found}: ${counts}` : `The image; ${found}`);
  els.announce.textContent = segments.length ? `${found}: ${counts}.` : `${found}.`;
}

/** On a phone the picture is below the form: bring the result's heading to the top of the screen.
 *  Called once the page's layout has settled after a run (the progress bar above it gone). */
export function revealResult() {
  if (window.matchMedia("(max-width: 859px)").matches) els.summary.scrollIntoView({ block: "start" });
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
  els.timing.hidden = true;
  els.announce.textContent = "";
  state.layers = null;
  for (const c of [els.maskLayer, els.labelLayer]) c.getContext("2d").clearRect(0, 0, c.width, c.height);
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
  fitPicture(img, img.naturalWidth, img.naturalHeight);
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
