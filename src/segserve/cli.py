"""`segserve` command line: `segserve segment IMAGE -p PROMPT` and `segserve serve`.

    segserve segment photo.jpg -p "person, dog" --json out.json --cutout cutouts/ --overlay overlay.png
    segserve segment photo.jpg -p person --server http://localhost:8000 --api-key KEY
    segserve serve --port 8000 --api-key KEY
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from segserve.errors import SegserveError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segserve", description="Self-hosted SAM 3 image segmentation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser(
        "segment",
        help="segment one image and print a table of what was found",
        description="Segment IMAGE (a path or an http(s) URL) with SAM 3. With no prompt, segment everything.",
    )
    seg.add_argument("image", help="image file, or an http(s) URL when --server is used")
    seg.add_argument("-p", "--prompt", default="", help='concepts separated by commas, e.g. "person, dog"')
    seg.add_argument("--json", type=Path, metavar="FILE", help="write the API's JSON answer to FILE")
    seg.add_argument("--cutout", type=Path, metavar="DIR", help="write one transparent PNG per segment to DIR")
    seg.add_argument("--overlay", type=Path, metavar="FILE", help="write the image with coloured masks to FILE")
    seg.add_argument("--model", default=None, help="model id or local checkpoint dir (default: SEGSERVE_MODEL)")
    seg.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    seg.add_argument("--threshold", type=float, default=None, help="minimum confidence kept (default 0.5)")
    seg.add_argument("--mask-threshold", type=float, default=None, help="mask probability cut-off (default 0.5)")
    seg.add_argument("--max-segments", type=int, default=None, help="keep at most this many (default 100)")
    seg.add_argument(
        "--everything-mode",
        choices=("grid", "vocabulary"),
        default=None,
        help="with no prompt: grid (SAM-style, label 'object') or vocabulary (COCO labels); "
        "default SEGSERVE_EVERYTHING_MODE",
    )
    seg.add_argument("--server", default=None, metavar="URL", help="use a running segserve server instead")
    seg.add_argument("--api-key", default=None, help="bearer token for --server (default: SEGSERVE_API_KEY)")
    seg.set_defaults(func=cmd_segment)

    from segserve.api.serve import add_serve_arguments  # the server's flags live beside the server

    srv = sub.add_parser("serve", help="run the HTTP API and the playground")
    add_serve_arguments(srv)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SegserveError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_segment(args: argparse.Namespace) -> int:
    from segserve.settings import Settings
    from segserve.types import SegmentOptions

    settings = Settings()
    if args.server:
        result = _segment_remote(args, settings)
    else:
        options = SegmentOptions(
            threshold=settings.threshold if args.threshold is None else args.threshold,
            mask_threshold=settings.mask_threshold if args.mask_threshold is None else args.mask_threshold,
            max_segments=settings.max_segments if args.max_segments is None else args.max_segments,
        )
        result = _segment_local(args, settings, options)

    _print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
    if args.cutout:
        args.cutout.mkdir(parents=True, exist_ok=True)
        for i, seg in enumerate(result):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in seg.label)[:40] or "segment"
            result.cutout(i).save(args.cutout / f"{seg.id:03d}_{safe}.png")
    if args.overlay:
        args.overlay.parent.mkdir(parents=True, exist_ok=True)
        result.overlay().save(args.overlay)
    return 0


def _segment_local(args: argparse.Namespace, settings, options):
    from segserve.engine.sam3 import Sam3Segmenter
    from segserve.images import decode_image
    from segserve.prompts import parse_prompt

    path = Path(args.image)
    if not path.is_file():
        raise SystemExit(f"error: no such image file: {path} (URLs need --server)")
    image = decode_image(path.read_bytes(), max_pixels=settings.max_image_pixels)
    concepts = parse_prompt(
        args.prompt, max_concepts=settings.max_concepts, max_concept_chars=settings.max_concept_chars
    )
    segmenter = Sam3Segmenter.from_settings(settings, model=args.model, device=args.device)
    return segmenter.segment(image, concepts, options, everything_mode=args.everything_mode)


def _segment_remote(args: argparse.Namespace, settings):
    from segserve.client import Client

    api_key = args.api_key or settings.api_key
    with Client(args.server, api_key=api_key) as client:
        # Options not given on the command line stay None, so the server's own defaults apply.
        result = client.segment(
            args.image,
            prompt=args.prompt,
            threshold=args.threshold,
            mask_threshold=args.mask_threshold,
            max_segments=args.max_segments,
            everything_mode=args.everything_mode,
        )
    if result.image is None and (args.cutout or args.overlay):
        result.image = _download_for_pictures(args.image, result.image_size, settings)
    return result


def _download_for_pictures(url: str, size: tuple[int, int], settings):
    """The server fetched the URL; cutouts and overlays need the pixels here too, so fetch them once more.

    This runs on the user's own machine for a URL the user typed, so a plain httpx GET is right here
    (the SSRF guard in `segserve.url` protects a server from its clients, not a user from themselves).
    """
    import httpx

    from segserve.images import decode_image

    try:
        response = httpx.get(url, follow_redirects=True, timeout=settings.url_timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise SystemExit(f"error: could not download {url} for --cutout/--overlay: {exc}") from None
    rgb = decode_image(response.content, max_pixels=settings.max_image_pixels)
    if rgb.shape[:2] != tuple(size):
        raise SystemExit(f"error: {url} changed between the server's fetch and ours; cannot draw cutouts")
    return rgb


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(result)} segments")
    for col in ("id", "label", "confidence", "bbox", "area"):
        table.add_column(col, justify="right" if col in ("id", "confidence", "area") else "left")
    areas = result.areas
    for i, seg in enumerate(result):
        table.add_row(str(seg.id), seg.label, f"{seg.confidence:.4f}", str(list(seg.bbox)), str(int(areas[i])))
    console = Console(width=120)
    console.print(table)
    if len(result):
        console.print("counts: " + ", ".join(f"{k}: {v}" for k, v in result.counts().items()))


def _version() -> str:
    from segserve import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
