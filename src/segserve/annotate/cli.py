"""`segserve annotate`: its flags and the command. Only argparse and the settings table load at
`--help`; the runner (and torch, Ray or httpx with it) is imported when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segserve.settings import EVERYTHING_MODES, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_EPILOG = (
    "Exit status: 0 only when every image of SOURCE has its result; 1 when any image failed (each failure is "
    "in the journal with its reason: re-run with --retry-failed) or the model/server failed; 2 for a wrong "
    "command line (including an OUT that holds another run: add --restart); 130 after Ctrl-C (the journal is "
    "intact: run the same command again to continue)."
)


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    return f"(default {value}; SEGSERVE_{name.upper()})"


def add_annotate(sub: Any, handler: Any) -> None:
    """Register `annotate` on the subparsers `sub`; `handler(args)` runs it."""
    p = sub.add_parser(
        "annotate",
        help="segment a whole dataset into COCO / YOLO / Label Studio files (resumable)",
        description="Segment every image of SOURCE (a folder, searched recursively; a glob; or a text file of paths "
        "and http(s) URLs) and write training data to OUT. Progress is journaled in OUT/journal.sqlite: run the "
        "same command again to continue after a stop or a crash. With no prompt, segment everything.",
        epilog=_EPILOG,
    )
    p.add_argument("source", nargs="?", help="folder, glob (quote it) or text file of paths/URLs")
    p.add_argument("-p", "--prompt", default="", help='concepts separated by commas, e.g. "person, helmet"')
    p.add_argument("-o", "--out", type=Path, help="output folder: the journal and the exports")
    p.add_argument(
        "--format",
        default=None,
        help="comma-separated: coco, yolo, labelstudio (default coco; with --export-only: the run's)",
    )
    p.add_argument("--coco-masks", choices=("rle", "polygon"), default="rle", help="COCO segmentation encoding")
    p.add_argument(
        "--yolo-images", choices=("link", "copy"), default="link", help="YOLO images/: symbolic links or copies"
    )
    p.add_argument("--model", default=None, help=f"hub id or local checkpoint dir {_default('model')}")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--threshold", type=float, default=None, help=f"minimum confidence kept {_default('threshold')}")
    p.add_argument("--mask-threshold", type=float, default=None, help=f"mask cut-off {_default('mask_threshold')}")
    p.add_argument("--max-segments", type=int, default=None, help=f"per image {_default('max_segments')}")
    p.add_argument(
        "--everything-mode",
        choices=EVERYTHING_MODES,
        default=None,
        help=f"with no prompt {_default('everything_mode')}",
    )
    p.add_argument("--server", default=None, metavar="URL", help="segment through a running segserve server")
    p.add_argument("--api-key", default=None, help="bearer token for --server (default: SEGSERVE_API_KEY)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"requests in flight with --server {_default('annotate_concurrency')}",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help="run on Ray Data: a local Ray, or the cluster at ADDRESS (e.g. ray://head:10001 or auto)",
    )
    p.add_argument(
        "--actors", type=int, default=None, help=f"Ray actors, one model each {_default('annotate_ray_actors')}"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help=f"images per Ray batch {_default('annotate_ray_batch_size')}"
    )
    p.add_argument("--restart", action="store_true", help="discard OUT's journal if it holds another run")
    p.add_argument("--retry-failed", action="store_true", help="try the images that failed before again")
    p.add_argument("--export-only", action="store_true", help="only write OUT's exports again from its journal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=handler)


def run_annotate(args: argparse.Namespace, load_settings: Any, usage_error: type[Exception]) -> int:
    formats = [f.strip() for f in (args.format or "").split(",") if f.strip()] or None
    if args.export_only:
        out = args.out or (Path(args.source) if args.source else None)
        if out is None:
            raise usage_error("--export-only needs OUT (segserve annotate --export-only -o OUT)")
        from segserve.annotate import export

        summary = export(out, formats, quiet=args.quiet)
        return EXIT_OK if summary.ok else EXIT_FAILED
    if not args.source or not args.out:
        raise usage_error("SOURCE and -o OUT are required (segserve annotate SOURCE -p PROMPT -o OUT)")
    settings = load_settings(
        model=args.model,
        device=args.device,
        annotate_concurrency=args.concurrency,
        annotate_ray_actors=args.actors,
        annotate_ray_batch_size=args.batch_size,
    )
    from segserve.annotate import annotate

    summary = annotate(
        args.source,
        args.out,
        args.prompt,
        formats=formats or ["coco"],
        settings=settings,
        server=args.server,
        api_key=args.api_key,
        ray=args.ray,
        restart=args.restart,
        retry_failed=args.retry_failed,
        quiet=args.quiet,
        coco_masks=args.coco_masks,
        yolo_images=args.yolo_images,
        threshold=args.threshold,
        mask_threshold=args.mask_threshold,
        max_segments=args.max_segments,
        everything_mode=args.everything_mode,
    )
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED
