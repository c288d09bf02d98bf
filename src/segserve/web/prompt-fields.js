// The visual prompts (exemplar boxes; clicked points and a box) as the coordinates field writes
// them and as the request's fields. Pure functions over plain objects, so Node can test them.
//
// `visual` is state.visual: { mode: "text" | "exemplar" | "object",
//   boxes: [{ box: [x0, y0, x1, y1], positive }]   exemplar boxes ("find similar"),
//   points: [{ x, y, positive }], box: [x0, y0, x1, y1] | null   the single object's clicks and box,
//   multimask   the single object's 3 candidate masks instead of the best one (an option, not a prompt) }.
// Coordinates are the image's pixels after EXIF orientation, boxes xyxy: the API's one convention.

export const MODES = ["text", "exemplar", "object"];

const HOW = 'write "box x0,y0,x1,y1" or "point x,y", with "-" in front for a negative one';

/** An empty prompt set in `mode`. */
export function emptyVisual(mode = "text") {
  return { mode, boxes: [], points: [], box: null };
}

/** The prompts that count in the current mode: what is drawn, listed and sent. */
export function activePrompts(visual) {
  if (visual.mode === "exemplar") return visual.boxes.map((b) => ({ kind: "box", box: b.box, positive: b.positive }));
  if (visual.mode === "object") {
    const items = visual.box ? [{ kind: "box", box: visual.box, positive: true }] : [];
    return items.concat(visual.points.map((p) => ({ kind: "point", x: p.x, y: p.y, positive: p.positive })));
  }
  return [];
}

const num = (v) => String(Math.round(v * 100) / 100);

/** One prompt as the coordinates field writes it: "box 10,20,200,240", "-point 120,80". */
export function formatPrompt(p) {
  const sign = p.positive ? "" : "-";
  return p.kind === "box" ? `${sign}box ${p.box.map(num).join(",")}` : `${sign}point ${num(p.x)},${num(p.y)}`;
}

export function formatPrompts(visual) {
  return activePrompts(visual).map(formatPrompt).join("; ");
}

/**
 * Read the coordinates field for `mode` ("exemplar" or "object") and an image of width x height
 * (either may be 0 when unknown: then only the shape is checked). Returns { boxes, points, box }
 * to merge into state.visual, or { error } saying what to fix.
 */
export function parsePrompts(text, mode, width = 0, height = 0) {
  const out = { boxes: [], points: [], box: null };
  const items = text.split(/[;\n]/).map((s) => s.trim()).filter(Boolean);
  for (const [i, item] of items.entries()) {
    const where = `Item ${i + 1} ("${item}")`;
    const m = /^([+-]?)\s*(box|point)\b\s*[:=(]?\s*(.*?)\s*\)?$/i.exec(item);
    if (!m) return { error: `${where}: ${HOW}.` };
    const positive = m[1] !== "-";
    const kind = m[2].toLowerCase();
    const parts = m[3].split(/[\s,]+/).filter(Boolean);
    const values = parts.map(Number);
    const want = kind === "box" ? 4 : 2;
    if (values.length !== want || values.some((v) => !Number.isFinite(v))) {
      return { error: `${where}: a ${kind} is ${want} numbers, ${kind === "box" ? "x0,y0,x1,y1" : "x,y"}.` };
    }
    const range = checkRange(kind, values, width, height);
    if (range) return { error: `${where}: ${range}` };
    if (kind === "box") {
      if (mode === "exemplar") out.boxes.push({ box: values, positive });
      else if (!positive) return { error: `${where}: the single object's box has no sign; mark what is not the object with "-point x,y".` };
      else if (out.box) return { error: `${where}: Single object mode takes one box; for several, choose Find similar.` };
      else out.box = values;
    } else if (mode === "exemplar") {
      return { error: `${where}: points are for Single object mode; here each exemplar is a box.` };
    } else {
      out.points.push({ x: values[0], y: values[1], positive });
    }
  }
  return out;
}

function checkRange(kind, v, width, height) {
  if (v.some((x) => x < 0)) return "coordinates start at 0 (the top-left corner).";
  if (kind === "box" && !(v[0] < v[2] && v[1] < v[3])) return "a box is x0,y0,x1,y1 with x0 < x1 and y0 < y1.";
  const xs = kind === "box" ? [v[0], v[2]] : [v[0]];
  const ys = kind === "box" ? [v[1], v[3]] : [v[1]];
  if (width && height && (xs.some((x) => x > width) || ys.some((y) => y > height))) {
    return `it is outside the ${width} × ${height} image.`;
  }
  return null;
}

/**
 * What run() sends for the prompts: the text prompt, the extra form fields ([name, JSON string]
 * pairs, as the API reads them from a form), or `error` ({ title, message }) instead of a request.
 */
export function visualFields(visual, promptText) {
  if (visual.mode === "exemplar" && visual.boxes.length) {
    return {
      prompt: promptText,
      fields: [
        ["boxes", JSON.stringify(visual.boxes.map((b) => b.box))],
        ["box_labels", JSON.stringify(visual.boxes.map((b) => (b.positive ? 1 : 0)))],
      ],
    };
  }
  if (visual.mode === "object") {
    if (!visual.points.length && !visual.box) {
      return {
        error: {
          title: "Nothing clicked yet",
          message: "In Single object mode, click the object on the picture or drag a box around it (or choose Text).",
        },
      };
    }
    // The tracker answers the clicks alone: the text prompt is not part of this request.
    const fields = [];
    if (visual.points.length) {
      fields.push(["points", JSON.stringify(visual.points.map((p) => [p.x, p.y]))]);
      fields.push(["point_labels", JSON.stringify(visual.points.map((p) => (p.positive ? 1 : 0)))]);
    }
    if (visual.box) fields.push(["box", JSON.stringify(visual.box)]);
    if (visual.multimask) fields.push(["multimask", "true"]);
    return { prompt: "", fields };
  }
  return { prompt: promptText, fields: [] };
}

/** Whether a change of the prompts should re-request on its own: only when there is something visual to send. */
export function hasVisual(visual) {
  return activePrompts(visual).length > 0;
}
