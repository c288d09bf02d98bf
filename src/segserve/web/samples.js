// Sample photos to try without an upload. Shipped in the package (web/samples/, four public-domain /
// CC0 JPEGs from scikit-image's data, 27-56 KB each; SOURCES.md there), rather than read from
// scikit-image at run time: a server installs without scikit-image (a test-only dependency), and a
// static file needs no route of its own.

import { els } from "./elements.js";
import { showError } from "./errors.js";
import { setFile } from "./image-input.js";
import { updateChips } from "./prompt.js";

const SAMPLES = [
  { file: "astronaut.jpg", alt: "An astronaut in her suit", prompt: "person" },
  { file: "coffee.jpg", alt: "A cup of coffee on a saucer", prompt: "cup" },
  { file: "chelsea.jpg", alt: "A tabby cat", prompt: "cat" },
  { file: "rocket.jpg", alt: "A rocket at lift-off", prompt: "rocket" },
];

const list = els.samples.querySelector(".sample-list");
for (const sample of SAMPLES) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "sample";
  button.title = `${sample.alt} (prompt: ${sample.prompt})`;
  const img = document.createElement("img");
  img.src = `/static/samples/${sample.file}`;
  img.alt = sample.alt;
  img.loading = "lazy";
  button.append(img);
  button.addEventListener("click", async () => {
    try {
      const res = await fetch(img.src);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = await res.blob();
      setFile(new File([blob], sample.file, { type: blob.type || "image/jpeg" }));
      els.prompt.value = sample.prompt;
      updateChips();
    } catch (err) {
      showError({ title: "Sample not available", message: `Could not load ${sample.file}: ${err.message}` });
    }
  });
  list.append(button);
}
els.samples.hidden = false;
