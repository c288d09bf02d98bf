// The reference document's `rleDecode` (/work/shared/reference/segmentation-api-doc.txt,
// "RLE Decoding Example (JavaScript)"), copied verbatim except that the TypeScript type
// annotations (`: string`, `: number`, `: number[]`, `: number[][]`) are removed so that Node
// runs it as plain JavaScript. Used by tests/web/test_rle_js.py to prove our masks decode with it.

/**
* Decode COCO RLE format mask
* @param rleString - RLE encoded string
* @param height - Image height
* @param width - Image width
* @returns 2D array [height][width], 1 indicates foreground, 0 indicates background
*/
export function rleDecode(
rleString,
height,
width,
) {
rleString = atob(rleString);
// Decode RLE counts
const counts = [];
let p = 0;
while (p < rleString.length) {
let x = 0;
let k = 0;
let more = true;
while (more) {
const c = rleString.charCodeAt(p) - 48;
x |= (c & 0x1f) << (5 * k);
more = (c & 0x20) !== 0;
p++;
k++;
if (!more && (c & 0x10) !== 0) {
x |= -1 << (5 * k);
}
}
if (counts.length > 2) {
x += counts[counts.length - 2];
}
counts.push(x);
}
// Create flat array from RLE counts (column-first order)
const total = height * width;
const mask = new Uint8Array(total);
let pos = 0;
let val = 0;
for (const count of counts) {
for (let i = 0; i < count && pos < total; i++) {
mask[pos] = val;
pos++;
}
val = 1 - val; // Switch between 0 and 1
}
// Convert flat array to 2D array (column-first to row-first)
const result = Array.from({ length: height }, () =>
new Array(width).fill(0),
);
// COCO RLE uses column-first (Fortran) order storage
let idx = 0;
for (let x = 0; x < width; x++) {
for (let y = 0; y < height; y++) {
if (idx < total) {
result[y][x] = mask[idx];
idx++;
}
}
}
return result;
}
