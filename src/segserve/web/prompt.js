// The prompt field and its example chips. Enter runs from the field; Ctrl/Cmd+Enter from anywhere.

import { els } from "./elements.js";
import { run } from "./request.js";

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
export function updateChips() {
  for (const chip of document.querySelectorAll(".chip")) {
    chip.classList.toggle("active", chip.dataset.prompt === els.prompt.value.trim());
  }
}
updateChips();
