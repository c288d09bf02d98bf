// The "Code" panel: the request this page sends (the last one, else the one Run would send now) as
// curl, the Python SDK, and the plain `requests` snippet of the README. The key is never written into
// the code: the snippets read it from $SEGSERVE_API_KEY.

import { els } from "./elements.js";
import { state } from "./state.js";

let lang = "curl";
const OPTIONS = [
  ["threshold", () => els.threshold],
  ["mask_threshold", () => els.maskThreshold],
  ["max_segments", () => els.maxSegments],
];

/** [field, value] pairs of the request, the image aside: what request.js sent last, or would send now. */
function currentFields() {
  if (state.lastRequest && state.lastRequest.source === state.source) return state.lastRequest.fields;
  const fields = [
    ["model", els.model.value.trim() || "sam3"],
    ["prompt", els.prompt.value],
  ];
  for (const [name, el] of OPTIONS) if (el().value.trim() !== "") fields.push([name, el().value.trim()]);
  return fields;
}

const shell = (v) => `'${String(v).replace(/'/g, `'\\''`)}'`;
const py = (v) => JSON.stringify(String(v)); // a JSON string is a valid Python str literal

export function snippet(which) {
  const origin = window.location.origin;
  const src = state.source;
  const fileName = src && src.kind === "file" ? src.name : "photo.jpg";
  const url = src && src.kind === "url" ? src.url : null;
  const fields = currentFields();
  if (which === "curl") {
    const lines = [`curl ${origin}/v1/images/segmentation`, `  -H "Authorization: Bearer $SEGSERVE_API_KEY"`];
    lines.push(url ? `  -F image=${shell(url)}` : `  -F image=@${shell(fileName)}`);
    for (const [k, v] of fields) lines.push(`  -F ${shell(`${k}=${v}`)}`);
    return lines.join(" \\\n");
  }
  if (which === "sdk") {
    const known = new Set(["threshold", "mask_threshold", "max_segments", "mask_format"]);
    const prompt = (fields.find(([k]) => k === "prompt") || [null, ""])[1];
    const model = (fields.find(([k]) => k === "model") || [null, "sam3"])[1];
    const args = [py(url || fileName), `prompt=${py(prompt)}`];
    for (const [k, v] of fields) if (known.has(k)) args.push(`${k}=${k === "mask_format" ? py(v) : Number(v)}`);
    // The visual prompts are sent as JSON lists of numbers, which read the same as Python lists.
    const visual = new Set(["boxes", "box_labels", "points", "point_labels", "box", "multimask"]);
    for (const [k, v] of fields) if (visual.has(k)) args.push(`${k}=${v === "true" ? "True" : v}`);
    const other = fields.filter(([k]) => !known.has(k) && !visual.has(k) && k !== "prompt" && k !== "model");
    return [
      "import os",
      "",
      "import segserve",
      "",
      `with segserve.Client(${py(origin)}, api_key=os.environ.get("SEGSERVE_API_KEY"), model=${py(model)}) as client:`,
      `    result = client.segment(${args.join(", ")})`,
      ...other.map(([k, v]) => `    # this page also sent ${k}=${v}`),
      "print(result.counts())",
    ].join("\n");
  }
  const data = `{${fields.map(([k, v]) => `${py(k)}: ${py(v)}`).join(", ")}}`;
  const lines = ["import os", "", "import requests", "", `API_URL = ${py(`${origin}/v1/images/segmentation`)}`];
  lines.push(`headers = {"Authorization": f"Bearer {os.environ['SEGSERVE_API_KEY']}"}`);
  if (url) {
    lines.push(`answer = requests.post(API_URL, headers=headers, data={"image": ${py(url)}, **${data}}).json()`);
  } else {
    lines.push(`with open(${py(fileName)}, "rb") as f:`);
    lines.push(`    answer = requests.post(API_URL, headers=headers, files={"image": f}, data=${data}).json()`);
  }
  lines.push(`print(answer["num_segments"], [s["label"] for s in answer["segments"]])`);
  return lines.join("\n");
}

export function updateCode() {
  if (!els.codePanel.open) return;
  els.codeText.textContent = snippet(lang);
}

for (const button of els.codePanel.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => {
    lang = button.dataset.lang;
    for (const b of els.codePanel.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b === button));
    updateCode();
  });
}
els.codePanel.addEventListener("toggle", updateCode);
for (const el of [els.prompt, els.model, els.threshold, els.maskThreshold, els.maxSegments]) el.addEventListener("input", updateCode);
els.copyCode.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(els.codeText.textContent);
    els.copyCode.textContent = "Copied";
  } catch {
    els.copyCode.textContent = "Select and copy";
  }
  setTimeout(() => (els.copyCode.textContent = "Copy"), 1500);
});
