// The segment list beside the picture, the summary over it ("N objects", a count per label), and the
// "all" checkbox. Rebuilt from state.result on every change, so it never drifts from what is drawn.

import { els } from "./elements.js";
import { downloadCutout } from "./downloads.js";
import { scheduleDraw, setHover } from "./picture.js";
import { countLabels, cssColor } from "./render.js";
import { drawn, listed, state } from "./state.js";

export function renderList() {
  const r = state.result;
  const segs = listed();
  // Each row is made once per answer and kept on its segment: the confidence slider only re-lists them
  // (rebuilding 40 rows per slider step cost ~30 ms, most of a frame).
  const items = segs.map((s) => {
    if (s.li) {
      s.li.querySelector(".seg-visible").checked = s.visible;
      s.li.classList.toggle("off", !s.visible);
      s.li.classList.toggle("active", s.index === state.hover);
      return s.li;
    }
    const li = document.createElement("li");
    s.li = li;
    li.className = "segment";
    li.dataset.id = String(s.id);
    li.dataset.index = String(s.index);
    const color = cssColor(s.color);
    const areaText =
      s.area == null ? "no mask" : `${formatPercent(s.area / (r.width * r.height))} · ${s.area.toLocaleString("en-US")} px`;
    li.innerHTML = `
      <input type="checkbox" class="seg-visible">
      <span class="swatch" style="--c: ${color}"></span>
      <span class="seg-main">
        <span class="seg-label"></span>
        <span class="seg-meta">#${s.id} · <span class="seg-area">${areaText}</span></span>
      </span>
      <span class="seg-conf" title="confidence">
        <span class="conf-value" title="${s.confidence}">${s.confidence.toFixed(2)}</span>
        <span class="conf-bar"><span style="width: ${Math.round(s.confidence * 100)}%; background: ${color}"></span></span>
      </span>
      <button type="button" class="btn btn-ghost btn-icon seg-cutout" title="Download #${s.id} as a transparent PNG"><svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 4v11m0 0-4-4m4 4 4-4M5 19h14"/></svg></button>`;
    li.querySelector(".seg-label").textContent = s.label;
    // Named by label and number ("Show person 1"), so a screen reader's list of checkboxes says which.
    li.querySelector(".seg-visible").setAttribute("aria-label", `Show ${s.label || "segment"} ${s.id}`);
    li.querySelector(".seg-cutout").setAttribute("aria-label", `Download ${s.label || "segment"} ${s.id} as PNG`);
    const box = li.querySelector(".seg-visible");
    box.checked = s.visible;
    box.addEventListener("change", () => {
      s.visible = box.checked;
      li.classList.toggle("off", !s.visible);
      syncToggleAll();
      scheduleDraw();
    });
    li.classList.toggle("off", !s.visible);
    const cut = li.querySelector(".seg-cutout");
    cut.disabled = !r.readable || !s.crop || s.crop.width === 0;
    cut.addEventListener("click", () => downloadCutout(s, cut));
    li.addEventListener("mouseenter", () => setHover(s.index));
    li.addEventListener("mouseleave", () => setHover(null));
    li.addEventListener("focusin", () => setHover(s.index));
    li.addEventListener("focusout", () => setHover(null));
    return li;
  });
  // Unchanged rows stay in place: re-inserting 40 rows restyles the whole list (~50 ms a slider step).
  const current = els.segmentList.children;
  if (current.length !== items.length || items.some((li, i) => current[i] !== li)) els.segmentList.replaceChildren(...items);
  els.segmentsEmpty.hidden = segs.length > 0;
  if (!segs.length) {
    els.segmentsEmpty.textContent = r.segments.length
      ? "All segments are below the confidence filter."
      : "Nothing found. Try another prompt, or lower the threshold under Advanced options.";
  }
  // Summary: "N objects" and a count per label, over what passes the confidence filter.
  const hiddenByFilter = r.segments.length - segs.length;
  els.summary.textContent =
    `${segs.length} object${segs.length === 1 ? "" : "s"}` + (hiddenByFilter ? ` (of ${r.segments.length})` : "");
  els.labelCounts.replaceChildren(
    ...countLabels(segs).map(([label, n]) => {
      const span = document.createElement("span");
      span.className = "count-chip";
      span.textContent = `${label} `;
      const b = document.createElement("b");
      b.textContent = String(n);
      span.append(b);
      return span;
    }),
  );
  syncToggleAll();
}

function syncToggleAll() {
  const segs = listed();
  const on = segs.filter((s) => s.visible).length;
  els.toggleAll.checked = on === segs.length && segs.length > 0;
  els.toggleAll.indeterminate = on > 0 && on < segs.length;
  const anyDrawn = drawn().length > 0;
  els.dlOverlay.disabled = !state.result || !state.result.readable;
  els.dlCutouts.disabled = !state.result || !state.result.readable || !anyDrawn;
  els.dlCutouts.textContent = anyDrawn ? `Cutouts .zip (${drawn().length})` : "Cutouts .zip";
}

els.toggleAll.addEventListener("change", () => {
  for (const s of listed()) s.visible = els.toggleAll.checked;
  renderList();
  scheduleDraw();
});

function formatPercent(f) {
  const p = f * 100;
  return p >= 10 ? `${p.toFixed(0)}%` : p >= 0.1 ? `${p.toFixed(1)}%` : "<0.1%";
}
