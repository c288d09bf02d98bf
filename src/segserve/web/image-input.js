// Where the image comes from: the file button, drag-and-drop, paste, or a URL. Every way ends in
// setSource, so that the preview and the old result are reset the same way whichever was used.

import { els } from "./elements.js";
import { updateCode } from "./code-panel.js";
import { hideError, showError } from "./errors.js";
import { clearResult, drawPreview, showPlaceholder } from "./result-view.js";
import { state } from "./state.js";

// The zone is a plain area (a click anywhere in it browses, for the mouse); the keyboard's way in is
// the "browse" button inside it. A zone with role=button around another button is the
// nested-interactive pattern that screen readers cannot announce.
els.dropzone.addEventListener("click", (e) => {
  if (e.target.closest("button")) return;
  els.fileInput.click();
});
els.browse.addEventListener("click", () => els.fileInput.click());
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
  if (file) hideError();
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
  if (/^data:image\//i.test(url)) {
    // Sent as a file: a form field holds at most ~1 MB (SEGSERVE_MAX_FIELD_BYTES), and a data URI's
    // "name" would be a slice of its base64.
    fromDataUri(url);
    return;
  }
  if (!/^https?:\/\//i.test(url)) {
    showError({ title: "Not an image URL", message: "Enter an http:// or https:// address of an image, or choose a file." });
    return;
  }
  setUrl(url);
});

async function fromDataUri(url) {
  try {
    const blob = await (await fetch(url)).blob();
    const ext = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg").replace(/[^a-z0-9]/gi, "");
    els.imageUrl.value = "";
    setFile(new File([blob], `pasted-image.${ext}`, { type: blob.type }));
  } catch {
    showError({ title: "Unreadable data URI", message: "The pasted data: URI is not valid base64 image data. Choose the file instead." });
  }
}

const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|bmp|gif|tiff?|heic|heif|avif)$/i;

export function setFile(file) {
  // Refused here, before any upload: a file that is no image, or one over the server's byte limit.
  if (!(file.type || "").startsWith("image/") && !IMAGE_EXTENSIONS.test(file.name || "")) {
    showError({
      title: "Not an image",
      message: `${file.name || "This file"} is ${file.type ? `a ${file.type} file` : "not an image"}. Choose a JPEG, PNG, WebP, BMP, GIF or TIFF image.`,
    });
    return;
  }
  const limits = state.limits;
  if (limits && file.size > limits.max_image_bytes) {
    showError({
      title: "Image too large",
      message: `${file.name} is ${formatBytes(file.size)}; this server takes images up to ${formatBytes(limits.max_image_bytes)}.`,
      hint: "Resize or re-compress it (JPEG at 85 % quality is usually plenty), then choose it again.",
    });
    return;
  }
  setSource({ kind: "file", file, name: file.name || "image" });
}

/** The server's pixel and aspect limits, checked on the decoded image: the message, or null if it fits. */
function overLimit(img) {
  const limits = state.limits;
  if (!limits) return null;
  const [w, h] = [img.naturalWidth, img.naturalHeight];
  if (w * h > limits.max_image_pixels) {
    return `It is ${w} × ${h} = ${(w * h / 1e6).toFixed(1)} MP; this server takes up to ${(limits.max_image_pixels / 1e6).toFixed(1)} MP.`;
  }
  if (Math.max(w, h) / Math.max(1, Math.min(w, h)) > limits.max_aspect_ratio) {
    return `It is ${w} × ${h}; this server takes a long side at most ${limits.max_aspect_ratio} times the short side.`;
  }
  return null;
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
  updateCode();
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
  const over = img && overLimit(img);
  if (over) {
    setSource(null);
    showError({ title: "Image too large", message: over, hint: "Resize it, then choose it again." });
    return;
  }
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

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
