// A mask at the size it is shown, straight from its RLE runs: no full-resolution array is ever made.
// A 36 MP photo's mask is 36 MB as bytes; shown in a 900-pixel-wide stage it needs ~0.5 MB, and the
// runs (a few thousand numbers) say which shown pixels are on without visiting the other 35 MB.
//
// Sampling is nearest-neighbour at pixel centres, the rule a canvas uses for drawImage with smoothing
// off: shown pixel (dx, dy) is the image pixel (floor((dx + 0.5) * W / dw), floor((dy + 0.5) * H / dh)).
// At dw = W, dh = H that is the mask itself, pixel for pixel.

/** For each image row y (and y = H), the first shown row whose source row is >= y. */
function firstShownAtOrAfter(size, shown) {
  const first = new Int32Array(size + 1);
  let d = 0;
  for (let y = 0; y <= size; y++) {
    while (d < shown && Math.floor(((d + 0.5) * size) / shown) < y) d++;
    first[y] = d;
  }
  return first;
}

let scratch = new Uint8Array(0);

/**
 * runs: column-major run lengths (zeros first) of an H x W mask. Returns
 *   { area, box: {x, y, width, height} in image pixels (tight), shown: {x, y, width, height, data} }
 * where `shown` is the tight box of the mask at dw x dh (data row-major 0/1). A non-empty mask too
 * small to hit a shown pixel's centre keeps one shown pixel, so that it can still be seen and hovered.
 */
export function runsToShownMask(runs, height, width, dw, dh) {
  if (dw > width || dh > height) throw new Error("shown size larger than the mask");
  const colShown = new Int32Array(width).fill(-1);
  for (let dx = 0; dx < dw; dx++) colShown[Math.floor(((dx + 0.5) * width) / dw)] = dx;
  const rowFirst = firstShownAtOrAfter(height, dh);
  if (scratch.length < dw * dh) scratch = new Uint8Array(dw * dh);
  let area = 0;
  let [x0, y0, x1, y1] = [width, height, -1, -1]; // image box, inclusive
  let [sx0, sy0, sx1, sy1] = [dw, dh, -1, -1]; // shown box, inclusive
  const total = width * height;
  let pos = 0;
  for (let i = 0; i < runs.length && pos < total; i++) {
    const end = Math.min(total, pos + runs[i]);
    if (i % 2 === 1 && end > pos) {
      area += end - pos;
      // A run of ones may wrap from one column into the next: walk it column by column.
      for (let p = pos; p < end; ) {
        const x = Math.floor(p / height);
        const ya = p - x * height;
        const yb = Math.min(height, ya + (end - p));
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (ya < y0) y0 = ya;
        if (yb - 1 > y1) y1 = yb - 1;
        const dx = colShown[x];
        if (dx >= 0) {
          const da = rowFirst[ya];
          const db = rowFirst[yb];
          for (let dy = da; dy < db; dy++) scratch[dy * dw + dx] = 1;
          if (db > da) {
            if (dx < sx0) sx0 = dx;
            if (dx > sx1) sx1 = dx;
            if (da < sy0) sy0 = da;
            if (db - 1 > sy1) sy1 = db - 1;
          }
        }
        p += yb - ya;
      }
    }
    pos = end;
  }
  if (area > 0 && sx1 < 0) {
    // Too small to be sampled: keep the shown pixel its box's centre falls in.
    const dx = Math.min(dw - 1, Math.floor((((x0 + x1 + 1) / 2) * dw) / width));
    const dy = Math.min(dh - 1, Math.floor((((y0 + y1 + 1) / 2) * dh) / height));
    scratch[dy * dw + dx] = 1;
    [sx0, sy0, sx1, sy1] = [dx, dy, dx, dy];
  }
  const box = area ? { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 } : { x: 0, y: 0, width: 0, height: 0 };
  if (sx1 < 0) return { area, box, shown: { x: 0, y: 0, width: 0, height: 0, data: new Uint8Array(0) } };
  const sw = sx1 - sx0 + 1;
  const sh = sy1 - sy0 + 1;
  const data = new Uint8Array(sw * sh);
  for (let r = 0; r < sh; r++) {
    const from = (sy0 + r) * dw + sx0;
    data.set(scratch.subarray(from, from + sw), r * sw);
    scratch.fill(0, from, from + sw); // leave the scratch clean for the next mask
  }
  return { area, box, shown: { x: sx0, y: sy0, width: sw, height: sh, data } };
}

/** Outline of a shown mask: on pixels with an off pixel (or the border) within t steps up/down/left/right. */
export function edgePixels(shown, t) {
  const { width: w, height: h, data } = shown;
  const edge = new Uint8Array(w * h);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const k = r * w + c;
      if (!data[k]) continue;
      for (let d = 1; d <= t; d++) {
        if (c - d < 0 || c + d >= w || r - d < 0 || r + d >= h || !data[k - d] || !data[k + d] || !data[k - d * w] || !data[k + d * w]) {
          edge[k] = 1;
          break;
        }
      }
    }
  }
  return edge;
}

/** The on pixel farthest from the mask's border (city-block distance, two passes): where a label reads
 *  as belonging to its mask, unlike the box's corner, which neighbours share. Shown coordinates. */
export function innerPoint(shown) {
  const { x, y, width: w, height: h, data } = shown;
  if (!w) return [x, y];
  const dist = new Int32Array(w * h);
  const big = w + h;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const k = r * w + c;
      if (!data[k]) continue;
      const up = r > 0 ? dist[k - w] : 0;
      const left = c > 0 ? dist[k - 1] : 0;
      dist[k] = Math.min(up, left, big) + 1;
    }
  }
  let best = -1;
  let at = 0;
  for (let r = h - 1; r >= 0; r--) {
    for (let c = w - 1; c >= 0; c--) {
      const k = r * w + c;
      if (!data[k]) continue;
      const down = r < h - 1 ? dist[k + w] : 0;
      const right = c < w - 1 ? dist[k + 1] : 0;
      const d = Math.min(dist[k], down + 1, right + 1);
      dist[k] = d;
      if (d >= best) {
        best = d;
        at = k;
      }
    }
  }
  return [x + (at % w) + 0.5, y + Math.floor(at / w) + 0.5];
}

/**
 * Label boxes that do not overlap: each tag centred on its anchor, then, in order (the first wins its
 * place), nudged up or down by a tag's height, then sideways, to the nearest free spot inside the
 * picture; a tag with no free spot within reach keeps its clamped place.
 * items: [{ anchor: [x, y], width, height }] -> [{ x, y, width, height }]
 */
export function placeLabels(items, areaWidth, areaHeight) {
  const placed = [];
  const overlaps = (a) => placed.some((b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height);
  const clamp = (rect) => ({
    ...rect,
    x: Math.max(0, Math.min(rect.x, areaWidth - rect.width)),
    y: Math.max(0, Math.min(rect.y, areaHeight - rect.height)),
  });
  const steps = [[0, 0]];
  for (let k = 1; k <= 6; k++) steps.push([0, k], [0, -k]);
  for (let k = 1; k <= 3; k++) for (const s of [1, -1]) for (let j = -2; j <= 2; j++) steps.push([s * k, j]);
  return items.map(({ anchor, width, height }) => {
    const home = clamp({ x: Math.round(anchor[0] - width / 2), y: Math.round(anchor[1] - height / 2), width, height });
    let rect = home;
    for (const [sx, sy] of steps) {
      const candidate = clamp({ ...home, x: home.x + sx * (width / 2 + 2), y: home.y + sy * (height + 2) });
      if (!overlaps(candidate)) {
        rect = candidate;
        break;
      }
    }
    placed.push(rect);
    return rect;
  });
}
