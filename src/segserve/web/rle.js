// COCO compressed RLE masks, as the segmentation API sends them: `mask.counts` is standard base64
// of pycocotools' compressed counts string, the runs are column-major (Fortran order) and start
// with a run of zeros. No dependencies; works in browsers and under Node >= 16 (global `atob`).
//
//   import { rleDecode, rleToMask, rleToCrop } from "./rle.js";
//   rleDecode(seg.mask.counts, h, w)   // number[h][w] of 0/1, same as the reference document's
//   rleToMask(seg.mask.counts, h, w)   // Uint8Array(h * w), row-major: mask[y * w + x]
//   rleToCrop(seg.mask.counts, h, w)   // { x, y, width, height, area, data } cut to the tight box

/** Base64 of a COCO compressed RLE string -> the run lengths (zeros first, then ones, ...). */
export function decodeCounts(counts) {
  const s = typeof atob === "function" ? atob(counts) : Buffer.from(counts, "base64").toString("latin1");
  const runs = [];
  let p = 0;
  while (p < s.length) {
    // Each value is 5-bit groups, least significant first; bit 0x20 = "more groups follow",
    // bit 0x10 of the last group = sign. Arithmetic instead of 32-bit shifts keeps big values exact.
    let x = 0;
    let scale = 1;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error("RLE counts end in the middle of a value");
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`RLE counts contain an invalid character at ${p}`);
      x += (c & 0x1f) * scale;
      scale *= 32;
      more = (c & 0x20) !== 0;
      p++;
      if (!more && (c & 0x10) !== 0) x -= scale; // negative: two's complement over the bits read
    }
    // From the fourth value on, counts are stored as the difference to the one two places back.
    if (runs.length > 2) x += runs[runs.length - 2];
    if (x < 0) throw new Error("RLE counts decode to a negative run");
    runs.push(x);
  }
  return runs;
}

function checkSize(height, width) {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 0 || width < 0) {
    throw new Error(`invalid mask size ${height} x ${width}`);
  }
}

/** Flat column-major Uint8Array (index x * height + y), runs past the end are cut off. */
export function rleToColumnMajor(counts, height, width) {
  checkSize(height, width);
  const runs = Array.isArray(counts) ? counts : decodeCounts(counts);
  const total = height * width;
  const flat = new Uint8Array(total);
  let pos = 0;
  for (let i = 0; i < runs.length && pos < total; i++) {
    const end = Math.min(total, pos + runs[i]);
    if (i % 2 === 1) flat.fill(1, pos, end);
    pos = end;
  }
  return flat;
}

/** Row-major Uint8Array(height * width) of 0/1: mask[y * width + x]. */
export function rleToMask(counts, height, width) {
  const col = rleToColumnMajor(counts, height, width);
  const out = new Uint8Array(height * width);
  let idx = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++, idx++) {
      if (col[idx]) out[y * width + x] = 1;
    }
  }
  return out;
}

/**
 * Drop-in for the reference document's `rleDecode(rleString, height, width)`: a 2-D array
 * [height][width] with 1 for foreground and 0 for background.
 */
export function rleDecode(rleString, height, width) {
  const flat = rleToMask(rleString, height, width);
  const result = [];
  for (let y = 0; y < height; y++) result.push(Array.from(flat.subarray(y * width, (y + 1) * width)));
  return result;
}

/**
 * The mask cut to its tight box, without materialising the whole image: memory is the box's area.
 * Returns { x, y, width, height, area, data } with data row-major over the box (data[r * width + c]
 * is pixel (x + c, y + r)); an empty mask gives width = height = area = 0.
 */
export function rleToCrop(counts, height, width) {
  checkSize(height, width);
  const runs = Array.isArray(counts) ? counts : decodeCounts(counts);
  const total = height * width;
  // Pass 1: the box, from the runs of ones alone.
  let x0 = Infinity;
  let x1 = -1;
  let y0 = Infinity;
  let y1 = -1;
  let area = 0;
  let pos = 0;
  for (let i = 0; i < runs.length && pos < total; i++) {
    const end = Math.min(total, pos + runs[i]);
    if (i % 2 === 1 && end > pos) {
      const ca = Math.floor(pos / height);
      const cb = Math.floor((end - 1) / height);
      x0 = Math.min(x0, ca);
      x1 = Math.max(x1, cb);
      if (ca === cb) {
        y0 = Math.min(y0, pos - ca * height);
        y1 = Math.max(y1, end - 1 - cb * height);
      } else {
        y0 = 0; // the run wraps from the bottom of one column to the top of the next
        y1 = height - 1;
      }
      area += end - pos;
    }
    pos = end;
  }
  if (area === 0) return { x: 0, y: 0, width: 0, height: 0, area: 0, data: new Uint8Array(0) };
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const data = new Uint8Array(bw * bh);
  // Pass 2: paint each run of ones, column by column.
  pos = 0;
  for (let i = 0; i < runs.length && pos < total; i++) {
    const end = Math.min(total, pos + runs[i]);
    if (i % 2 === 1) {
      let p = pos;
      while (p < end) {
        const cx = Math.floor(p / height);
        const cy = p - cx * height;
        const stop = Math.min(end, (cx + 1) * height);
        for (let yy = cy, k = (cy - y0) * bw + (cx - x0); yy < cy + (stop - p); yy++, k += bw) data[k] = 1;
        p = stop;
      }
    }
    pos = end;
  }
  return { x: x0, y: y0, width: bw, height: bh, area, data };
}
