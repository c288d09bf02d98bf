// The API key field. Kept in localStorage so that a reload does not ask for it again.

import { els } from "./elements.js";

const KEY_STORAGE = "segserve.apiKey";

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
// A key pasted with its scheme ("Bearer xyz", as copied from a curl line) is the key "xyz": the page
// adds the scheme itself.
els.apiKey.addEventListener("change", () => {
  const bare = els.apiKey.value.trim().replace(/^bearer\s+/i, "").trim();
  if (bare === els.apiKey.value) return;
  els.apiKey.value = bare;
  els.apiKey.dispatchEvent(new Event("input"));
});
els.toggleKey.addEventListener("click", () => {
  const show = els.apiKey.type === "password";
  els.apiKey.type = show ? "text" : "password";
  els.toggleKey.textContent = show ? "Hide" : "Show";
  els.toggleKey.setAttribute("aria-pressed", String(show));
});
