// Pixels for the playground: segment colours, the mask layer, label tags and cutouts.
// Pure functions over typed arrays (plus a 2-D context where text is drawn), so Node can test them.

const GOLDEN = 0.618033988749895;

// Tags' font: the system's UI font, then fonts with CJK glyphs (labels may be Chinese: 人, 安全帽).
export const TAG_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif';

/** Python's colorsys.hsv_to_rgb, step for step, so that the results are bit-identical. */
function hsvToRgb(h, s, v) {
  if (s === 0) return [v, v, v];
  let i = Math.trunc(h * 6.0);
  const f = h * 6.0 - i;
  const p = v * (1.0 - s);
  const q = v * (1.0 - s * f);
  const t = v * (1.0 - s * (1.0 - f));
  i %= 6;
  return [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i];
}

/** Colour of the segment at 0-based index i: the same golden-ratio hues as segserve.types.palette. */
export function segmentColor(i) {
  const [r, g, b] = hsvToRgb((i * GOLDEN) % 1.0, 0.75, 0.95);
  return [Math.trunc(r * 255), Math.trunc(g * 255), Math.trunc(b * 255)];
}

export function palette(n) {
  return Array.from({ length: n }, (_, i) => segmentColor(i));
}

export function cssColor([r, g, b], alpha = 1) {
  return alpha === 1 ? `rgb(${r} ${g} ${b})` : `rgb(${r} ${g} ${b} / ${alpha})`;
}

/** Black or white, whichever reads better on the colour. */
export function textColorOn([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

/** Outline width in image pixels: about 1 screen pixel once a big image is scaled to fit. */
export function lineWidthFor(width, height) {
  return Math.max(1, Math.round(Math.max(width, height) / 700));
}

/**
 * The mask layer as RGBA bytes (width * height * 4): each segment in its colour at `opacity`,
 * its outline opaque, nothing (alpha 0) where no segment is.
 *
 * segments: [{ index, crop: {x, y, width, height, data}, color? }] in confidence order, highest
 * first; the first one is drawn on top. `hoverIndex` (optional) is drawn on top and brighter and the
 * others dimmed.
 */
export function composeMaskLayer(segments, width, height, options = {}) {
  const { opacity = 0.5, outline = true, hoverIndex = null, lineWidth = 1 } = options;
  const out = new Uint8ClampedArray(width * height * 4);
  const order = segments.filter((s) => s.index !== hoverIndex).reverse();
  const hovered = segments.find((s) => s.index === hoverIndex);
  if (hovered) order.push(hovered);
  for (const seg of order) {
    const { crop } = seg;
    if (!crop || crop.width === 0) continue;
    const [r, g, b] = seg.color || segmentColor(seg.index);
    let fill = opacity;
    let line = 1;
    if (hovered) {
      fill = seg === hovered ? Math.min(1, opacity + 0.3) : opacity * 0.35;
      line = seg === hovered ? 1 : 0.4;
    }
    const fillA = Math.round(fill * 255);
    const lineA = Math.round(line * 255);
    const t = outline ? lineWidth : 0;
    const { x: x0, y: y0, width: bw, height: bh, data } = crop;
    for (let r0 = 0; r0 < bh; r0++) {
      const y = y0 + r0;
      if (y < 0 || y >= height) continue;
      const rowBase = r0 * bw;
      for (let c0 = 0; c0 < bw; c0++) {
        if (!data[rowBase + c0]) continue;
        const x = x0 + c0;
        if (x < 0 || x >= width) continue;
        let edge = false;
        // An outline pixel has a pixel outside the mask (or the image) within `t` steps up, down,
        // left or right; for t = 1 that is segserve.types._edges.
        for (let d = 1; d <= t && !edge; d++) {
          edge =
            c0 - d < 0 || c0 + d >= bw || r0 - d < 0 || r0 + d >= bh ||
            !data[rowBase + c0 - d] || !data[rowBase + c0 + d] ||
            !data[rowBase - d * bw + c0] || !data[rowBase + d * bw + c0];
        }
        const k = (y * width + x) * 4;
        out[k] = r;
        out[k + 1] = g;
        out[k + 2] = b;
        out[k + 3] = edge ? lineA : fillA;
      }
    }
  }
  return out;
}

/** `label 0.93` tags at the top-left of each box, like the CLI's overlay; fontSize in image pixels. */
export function drawLabels(ctx, segments, width, height, fontSize = null) {
  const size = fontSize || Math.max(12, Math.round(Math.max(width, height) / 45));
  const pad = Math.max(2, Math.round(size / 4));
  ctx.save();
  ctx.font = `600 ${size}px ${TAG_FONT}`;
  ctx.textBaseline = "top";
  // Lowest confidence first, so the best segments' tags end up on top.
  for (const seg of [...segments].reverse()) {
    const tag = `${seg.label} ${seg.confidence.toFixed(2)}`;
    const color = seg.color || segmentColor(seg.index);
    const tw = Math.ceil(ctx.measureText(tag).width) + 2 * pad;
    const th = size + 2 * pad;
    const [bx, by] = seg.bbox;
    const x = Math.max(0, Math.min(bx, width - tw));
    const y = by - th >= 0 ? by - th : Math.min(by, Math.max(0, height - th));
    ctx.fillStyle = cssColor(color);
    ctx.fillRect(x, y, tw, th);
    ctx.fillStyle = textColorOn(color);
    ctx.fillText(tag, x + pad, y + pad + 1);
  }
  ctx.restore();
}

/** RGBA bytes of one segment's box: the image's pixels, transparent outside the mask. */
export function cutoutPixels(imageRGBA, imageWidth, crop) {
  const { x: x0, y: y0, width: bw, height: bh, data } = crop;
  const out = new Uint8ClampedArray(bw * bh * 4);
  for (let r = 0; r < bh; r++) {
    const src = ((y0 + r) * imageWidth + x0) * 4;
    const dst = r * bw * 4;
    for (let c = 0; c < bw; c++) {
      if (!data[r * bw + c]) continue;
      const s = src + c * 4;
      const d = dst + c * 4;
      out[d] = imageRGBA[s];
      out[d + 1] = imageRGBA[s + 1];
      out[d + 2] = imageRGBA[s + 2];
      out[d + 3] = 255;
    }
  }
  return out;
}

/** Which segment is under image pixel (x, y): the first (highest-confidence) that covers it. */
export function segmentAt(segments, x, y) {
  for (const seg of segments) {
    const c = seg.crop;
    if (!c || x < c.x || y < c.y || x >= c.x + c.width || y >= c.y + c.height) continue;
    if (c.data[(y - c.y) * c.width + (x - c.x)]) return seg;
  }
  return null;
}

/** { label: count } most frequent first, ties in first-seen order (like collections.Counter). */
export function countLabels(segments) {
  const counts = new Map();
  for (const s of segments) counts.set(s.label, (counts.get(s.label) || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}
