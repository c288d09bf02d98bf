"""The playground's `zip.js` writes archives Python's zipfile reads back, byte for byte."""

from __future__ import annotations

import base64
import io
import zipfile

ZIP = """
const { makeZip, crc32 } = m.zip;
const enc = new TextEncoder();
const zip = makeZip([
  { name: "a.txt", data: enc.encode("hello") },
  { name: "dir/ü.bin", data: new Uint8Array([0, 1, 2, 255]) },
  { name: "empty", data: new Uint8Array(0) },
]);
return { zip: Buffer.from(zip).toString("base64"), crc: crc32(enc.encode("123456789")) };
"""


def test_zip_js_writes_a_readable_archive(node) -> None:
    out = node({"zip": "zip.js"}, ZIP)
    assert out["crc"] == 0xCBF43926  # the CRC-32 check value
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(out["zip"]))) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["a.txt", "dir/ü.bin", "empty"]
        assert zf.read("a.txt") == b"hello"
        assert zf.read("dir/ü.bin") == bytes([0, 1, 2, 255])
        assert zf.read("empty") == b""
