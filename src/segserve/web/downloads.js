// The downloads: the JSON answer, the overlay PNG, and cutouts (one PNG, or all of them in a ZIP).
// Built in the page from what is drawn, so they match the picture without another request.

import { els } from "./elements.js";
import { layerOptions } from "./picture.js";
import { composeMaskLayer, cutoutPixels, drawLabels } from "./render.js";
import { drawn, state } from "./state.js";
import { makeZip } from "./zip.js";

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

export async function downloadCutout(seg) {
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
