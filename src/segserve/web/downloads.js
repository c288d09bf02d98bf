// The downloads: the JSON answer, the overlay PNG, and cutouts (one PNG, or all of them in a ZIP).
// Built in the page from what is drawn, so they match the picture without another request; the
// pictures at full resolution in a worker (download-worker.js), never on the page's thread.

import { els } from "./elements.js";
import { showError } from "./errors.js";
import { lineWidthFor } from "./render.js";
import { drawn, state } from "./state.js";

els.dlJson.addEventListener("click", () => {
  if (!state.result) return;
  saveBlob(new Blob([state.result.text], { type: "application/json" }), `${baseName()}-segments.json`);
});

els.dlOverlay.addEventListener("click", () => {
  if (!state.result || !state.result.readable) return;
  runJob(els.dlOverlay, { job: "overlay", name: `${baseName()}-overlay.png`, labels: els.showLabels.checked }, drawn());
});

els.dlCutouts.addEventListener("click", () => {
  const segs = drawn().filter((s) => s.crop.width > 0);
  if (!segs.length || !state.result.readable) return;
  runJob(els.dlCutouts, { job: "cutouts", zip: true, name: `${baseName()}-cutouts.zip` }, segs);
});

export function downloadCutout(seg, button) {
  if (!state.result || !state.result.readable || !seg.crop || !seg.crop.width) return;
  runJob(button, { job: "cutouts", zip: false }, [seg]);
}

/** Build a download at full resolution in a worker (download-worker.js), showing its progress on the
 *  button that asked for it. */
async function runJob(button, job, segs) {
  if (button.dataset.busy) return;
  const r = state.result;
  const label = button.innerHTML;
  button.dataset.busy = "1";
  button.setAttribute("aria-busy", "true");
  const show = (fraction) => {
    if (button.classList.contains("btn-icon")) return; // the row's icon button keeps its icon
    button.textContent = `${button.dataset.title || "Preparing"} ${Math.round(fraction * 100)}%`;
  };
  button.dataset.title = button.textContent.replace(/\s*\(\d+\)$/, "");
  show(0);
  const worker = new Worker(new URL("./download-worker.js", import.meta.url), { type: "module" });
  try {
    const img = state.image;
    const resize = img.naturalWidth !== r.width || img.naturalHeight !== r.height;
    const bitmap = await createImageBitmap(img, resize ? { resizeWidth: r.width, resizeHeight: r.height, resizeQuality: "high" } : {});
    const scale = state.layers ? r.width / state.layers.dw : 1;
    const segments = segs.map((s) => {
      const layer = state.layers && state.layers.byIndex.get(s.index);
      const anchor = layer ? [layer.anchor[0] * scale, layer.anchor[1] * scale] : [s.bbox[0], s.bbox[1]];
      return { index: s.index, id: s.id, label: s.label, confidence: s.confidence, counts: s.counts, color: s.color, anchor, name: cutoutName(s) };
    });
    const message = {
      ...job,
      bitmap,
      width: r.width,
      height: r.height,
      segments,
      opacity: Number(els.opacity.value),
      outline: els.showOutline.checked,
      lineWidth: lineWidthFor(r.width, r.height),
    };
    const files = await new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => {
        if (data.progress != null) show(data.progress);
        else if (data.error) reject(new Error(data.error));
        else resolve(data.files);
      };
      worker.onerror = (e) => reject(new Error(e.message || "the download worker failed"));
      worker.postMessage(message, [bitmap]);
    });
    for (const f of files) saveBlob(f.blob, f.name);
  } catch (err) {
    showError({ title: "Download failed", message: String(err.message || err) });
  } finally {
    worker.terminate();
    button.innerHTML = label;
    delete button.dataset.busy;
    button.removeAttribute("aria-busy");
  }
}

function cutoutName(seg) {
  const label = seg.label.replace(/[^\p{L}\p{N}_-]+/gu, "-").replace(/^-+|-+$/g, "") || "segment";
  return `${baseName()}-${String(seg.id).padStart(2, "0")}-${label}.png`;
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
