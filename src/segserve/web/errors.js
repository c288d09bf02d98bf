// The error box. API errors are turned into a title, the server's own message, and a hint that says
// what to change on this page, keyed by the error code of api-contract.md.

import { els } from "./elements.js";

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

export function describeApiError(res, json, text) {
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

export function showError({ title, message, hint = "", level = "error" }) {
  els.errorTitle.textContent = title;
  els.errorMessage.textContent = message;
  els.errorHint.textContent = hint;
  els.errorHint.hidden = !hint;
  els.error.classList.toggle("info", level === "info");
  els.error.hidden = false;
}

export function hideError() {
  els.error.hidden = true;
}
