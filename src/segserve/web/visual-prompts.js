// Visual prompts: the mode switch (Text / Find similar / Single object), the prompts drawn on the
// picture or typed as coordinates, their list, undo and clear, and the re-request after each change.
//
// state.visual holds the prompts (see prompt-fields.js), state.tool what a press on the picture
// draws: "none" in Text mode (so a drag there may pan), "box" for exemplar boxes, "point" for the
// single object's clicks (a drag there is its box).

import { activePrompts, emptyVisual, formatPrompt, formatPrompts, hasVisual, parsePrompts } from "./prompt-fields.js";
import { attachPointer, cancelGesture, imageSize, render as renderLayer } from "./prompt-layer.js";
import { run } from "./request.js";
import { clearResult, drawPreview } from "./result-view.js";
import { state } from "./state.js";

const $ = (id) => document.getElementById(id);
const ui = {
  modes: [...document.querySelectorAll("input[name='vp-mode']")],
  panel: $("vp-panel"),
  help: $("vp-help"),
  negative: $("vp-negative"),
  undo: $("vp-undo"),
  clear: $("vp-clear"),
  multimask: $("vp-multimask"),
  multimaskRow: $("vp-multimask-row"),
  coords: $("vp-coords"),
  coordsError: $("vp-coords-error"),
  list: $("vp-list"),
  prompt: $("prompt"),
  chips: [...document.querySelectorAll(".chip")],
  stack: $("canvas-stack"),
};

// Changes closer together than this (a quick run of clicks) make one request. The server caches the
// image's features, so each request after the first costs the prompt's decoder only.
const UPDATE_DELAY_MS = 350;

const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const TOOL = { text: "none", exemplar: "box", object: "point" };
const HELP = {
  exemplar:
    "Drag a box around one example to find every object like it. Negative (or Alt, a right-drag, a long press): " +
    "an example of what not to find.",
  object:
    "Click the object (positive); right-click, Alt-click, a long press or Negative marks what is not it. " +
    "Drag a box around the object to add one box.",
};

const history = []; // earlier prompt sets, for undo
let updateTimer = null;
let shownSource = null; // the image the prompts were drawn on

state.visual = emptyVisual("text");
state.visual.multimask = ui.multimask.checked; // a reload may keep the box ticked
state.tool = "none";

/** Every change to the prompts goes through here: undo can go back to before it, and the answer follows it. */
function change(mutate) {
  history.push(snapshot());
  mutate(state.visual);
  refresh({ field: true });
  scheduleUpdate();
}

function snapshot() {
  const { boxes, points, box } = state.visual;
  return structuredClone({ boxes, points, box });
}

export function undo() {
  if (!history.length) return;
  Object.assign(state.visual, history.pop());
  refresh({ field: true });
  scheduleUpdate();
}

export function clearPrompts() {
  if (!hasVisual(state.visual)) return;
  change((v) => {
    if (v.mode === "exemplar") v.boxes = [];
    else {
      v.points = [];
      v.box = null;
    }
  });
}

export function setMode(mode) {
  state.visual.mode = mode;
  state.tool = TOOL[mode];
  cancelGesture();
  for (const input of ui.modes) input.checked = input.value === mode;
  ui.panel.hidden = mode === "text";
  ui.multimaskRow.hidden = mode !== "object";
  ui.help.textContent = HELP[mode] || "";
  ui.coords.placeholder = mode === "object" ? "point 120,80; -point 40,60; box 10,20,200,240" : "box 10,20,200,240; -box 300,40,380,120";
  // The tracker answers clicks only: the text prompt has no part in a single-object request.
  ui.prompt.disabled = mode === "object";
  for (const chip of ui.chips) chip.disabled = mode === "object";
  refresh({ field: true });
  if (hasVisual(state.visual)) scheduleUpdate();
}

/** Redraw the layer and the list; `field` rewrites the coordinates field from the prompts too. */
function refresh({ field = false } = {}) {
  const prompts = activePrompts(state.visual);
  renderLayer();
  ui.undo.disabled = history.length === 0;
  ui.clear.disabled = prompts.length === 0;
  if (field) {
    ui.coords.value = formatPrompts(state.visual);
    showCoordsError("");
  }
  ui.list.replaceChildren(
    ...prompts.map((p, i) => {
      const li = document.createElement("li");
      li.className = `vp-item ${p.positive ? "pos" : "neg"}`;
      const what = `${p.positive ? "positive" : "negative"} ${p.kind}`;
      const mark = document.createElement("span");
      mark.className = "vp-mark";
      mark.setAttribute("aria-hidden", "true");
      mark.textContent = p.positive ? "+" : "−";
      const text = document.createElement("span");
      text.className = "vp-text";
      text.textContent = `${i + 1} · ${formatPrompt(p)}`;
      text.title = what;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-ghost btn-icon vp-remove";
      remove.setAttribute("aria-label", `Remove prompt ${i + 1}, ${what} ${formatPrompt(p).replace(/^-?\S+ /, "")}`);
      remove.textContent = "✕";
      remove.addEventListener("click", () => {
        removeAt(i);
        // The list was rebuilt: keep the keyboard's place (the next row's button, else the field).
        const buttons = ui.list.querySelectorAll(".vp-remove");
        (buttons[Math.min(i, buttons.length - 1)] || ui.coords).focus();
      });
      li.append(mark, text, remove);
      return li;
    }),
  );
}

function removeAt(i) {
  change((v) => {
    if (v.mode === "exemplar") v.boxes.splice(i, 1);
    else if (v.box && i === 0) v.box = null;
    else v.points.splice(i - (v.box ? 1 : 0), 1);
  });
}

function scheduleUpdate() {
  clearTimeout(updateTimer);
  updateTimer = setTimeout(update, UPDATE_DELAY_MS);
}

function update() {
  if (!state.source || state.visual.mode === "text") return;
  if (hasVisual(state.visual)) {
    run();
  } else if (state.result && state.image) {
    // The last prompt is gone: its masks would answer a question no longer asked.
    clearResult();
    drawPreview();
  }
}

// --- input: the picture, the buttons, the coordinates field, the keyboard ---------------------------

attachPointer({
  // On a Mac, Ctrl-click is the right-click of a one-button mouse or trackpad.
  negative: (e) => e.altKey || (e.ctrlKey && MAC) || ui.negative.getAttribute("aria-pressed") === "true",
  box: (box, positive) =>
    change((v) => {
      if (v.mode === "exemplar") v.boxes.push({ box, positive });
      else v.box = box; // the single object has one box: a new drag replaces it
    }),
  point: (x, y, positive) => change((v) => v.points.push({ x, y, positive })),
});

for (const input of ui.modes) input.addEventListener("change", () => input.checked && setMode(input.value));
ui.negative.addEventListener("click", () => {
  const on = ui.negative.getAttribute("aria-pressed") !== "true";
  ui.negative.setAttribute("aria-pressed", String(on));
});
ui.multimask.addEventListener("change", () => {
  state.visual.multimask = ui.multimask.checked;
  if (state.visual.mode === "object" && hasVisual(state.visual)) scheduleUpdate();
});
ui.undo.addEventListener("click", undo);
ui.clear.addEventListener("click", clearPrompts);

function applyCoords() {
  const [w, h] = imageSize();
  const parsed = parsePrompts(ui.coords.value, state.visual.mode, w, h);
  if (parsed.error) {
    showCoordsError(parsed.error);
    return;
  }
  showCoordsError("");
  const next = { ...state.visual };
  if (next.mode === "exemplar") next.boxes = parsed.boxes;
  else Object.assign(next, { points: parsed.points, box: parsed.box });
  if (formatPrompts(next) === formatPrompts(state.visual)) return;
  change((v) => Object.assign(v, next));
}

function showCoordsError(message) {
  ui.coordsError.textContent = message;
  ui.coordsError.hidden = !message;
  ui.coords.setAttribute("aria-invalid", String(Boolean(message)));
}

ui.coords.addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    e.stopPropagation(); // not the page's Ctrl+Enter run: applying re-requests already
    applyCoords();
  }
});
ui.coords.addEventListener("change", applyCoords);

document.addEventListener("keydown", (e) => {
  if (state.visual.mode === "text") return;
  if (e.key === "Escape" && cancelGesture()) return;
  const editing = e.target instanceof HTMLElement && (e.target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName));
  // In a text field Ctrl/Cmd+Z undoes the typing, as everywhere; elsewhere it undoes the last prompt.
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z" && !editing && history.length) {
    e.preventDefault();
    undo();
  }
});

// A new image (viewport.js's fitPicture marks its size on the stack) starts with no prompts: they
// were drawn on the old one. A new size for the same image (the answer's) moves the layer's grid.
new MutationObserver(() => {
  if (state.source !== shownSource) {
    shownSource = state.source;
    history.length = 0;
    Object.assign(state.visual, emptyVisual(state.visual.mode));
    refresh({ field: true });
  } else {
    renderLayer();
  }
}).observe(ui.stack, { attributes: true, attributeFilter: ["data-image-width", "data-image-height", "hidden"] });

setMode(ui.modes.find((input) => input.checked)?.value || "text");
