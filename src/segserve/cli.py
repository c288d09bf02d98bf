"""`segserve` command line: `segserve segment IMAGE -p PROMPT` and `segserve serve`.

    segserve segment photo.jpg -p "person, dog" --json out.json --cutout cutouts/ --overlay overlay.png
    segserve segment photo.jpg -p person --server http://localhost:8000 --api-key KEY
    segserve segment photo.jpg -p helmet --box 10,20,200,240 --negative-box 300,20,380,120
    segserve segment photo.jpg --point 120,80 --multimask
    segserve serve --port 8000 --api-key KEY

Each command imports only what it needs: `--help` loads neither torch nor FastAPI, and `segment`
works on the base install (no server extra). Every failure is one line on stderr; the exit status
is 2 for a wrong command line (a bad flag value, a missing file named on it, a device this machine
lacks) and 1 for work that failed (the model, the image, the server).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from segserve.annotate.cli import add_annotate, run_annotate
from segserve.cli_prompts import FLAG_OF_FIELD, add_visual_flags, visual_fields
from segserve.errors import InvalidParameterError, InvalidPromptError, SegserveError
from segserve.prompts.lexicon import GlossaryError
from segserve.settings import EVERYTHING_MODES, LABEL_LANGUAGES, LOG_LEVELS, MASK_FORMATS, Settings

EXIT_FAILED = 1
EXIT_USAGE = 2

_EPILOG = "Exit status: 0 done, 1 the work failed (model, image, server), 2 the command line is wrong."


class UsageError(Exception):
    """A wrong command line: printed as one line, exit status 2."""


def _default(name: str) -> str:
    """`(default X; SEGSERVE_NAME)` for a flag's help, from the one table of settings."""
    value = Settings.model_fields[name].default
    return f"(default {'none' if value is None or value == '' else value}; SEGSERVE_{name.upper()})"


def _switch(name: str, flag_sets: bool) -> str:
    """`(default off; SEGSERVE_NAME=1)` for a store_true flag that sets boolean setting `name` to
    `flag_sets`: what happens without the flag, and the variable that does the same."""
    default = Settings.model_fields[name].default
    shown = "on" if default == flag_sets else "off"
    return f"(default {shown}; SEGSERVE_{name.upper()}={int(flag_sets)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segserve", description="Self-hosted SAM 3 image segmentation.", epilog=_EPILOG
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_segment(sub)
    _add_serve(sub)
    add_annotate(sub, cmd_annotate)
    _add_convert(sub)
    return parser


def _add_segment(sub: Any) -> None:
    seg = sub.add_parser(
        "segment",
        help="segment one image and print a table of what was found",
        description="Segment IMAGE (a path, or an http(s) URL with --server) with SAM 3. With no prompt, "
        "segment everything.",
        epilog=_EPILOG,
    )
    seg.add_argument("image", help="image file, or an http(s) URL when --server is used")
    seg.add_argument("-p", "--prompt", default="", help='concepts separated by commas, e.g. "person, dog"')
    seg.add_argument("--json", type=Path, metavar="FILE", help="write the API's JSON answer to FILE")
    seg.add_argument("--cutout", type=Path, metavar="DIR", help="write one transparent PNG per segment to DIR")
    seg.add_argument("--overlay", type=Path, metavar="FILE", help="write the image with coloured masks to FILE")
    seg.add_argument("--model", default=None, help=f"hub id or local checkpoint dir {_default('model')}")
    seg.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available; SEGSERVE_DEVICE)")
    seg.add_argument("--threshold", type=float, default=None, help=f"minimum confidence kept {_default('threshold')}")
    seg.add_argument(
        "--mask-threshold", type=float, default=None, help=f"mask probability cut-off {_default('mask_threshold')}"
    )
    seg.add_argument(
        "--max-segments", type=int, default=None, help=f"keep at most this many {_default('max_segments')}"
    )
    seg.add_argument(
        "--mask-format",
        choices=MASK_FORMATS,
        default=None,
        help=f"mask encoding in --json {_default('mask_format')}",
    )
    seg.add_argument(
        "--everything-mode",
        choices=EVERYTHING_MODES,
        default=None,
        help="with no prompt: grid (SAM-style, label 'object') or vocabulary (COCO labels) "
        + _default("everything_mode"),
    )
    seg.add_argument(
        "--label-language",
        choices=LABEL_LANGUAGES,
        default=None,
        help="language of vocabulary-mode labels: en or zh (Chinese) " + _default("label_language"),
    )
    seg.add_argument("--server", default=None, metavar="URL", help="use a running segserve server instead")
    seg.add_argument("--api-key", default=None, help="bearer token for --server (default: SEGSERVE_API_KEY)")
    add_visual_flags(seg)
    seg.set_defaults(func=cmd_segment)


def _add_serve(sub: Any) -> None:
    """The `serve` flags; each defaults to None so the setting (environment, .env, default) applies."""
    srv = sub.add_parser(
        "serve",
        help="run the HTTP API and the playground",
        description="Serve the SAM 3 segmentation API: POST /v1/images/segmentation (and GET /v1/models) "
        "behind bearer keys, the playground (/), /docs, /healthz, /readyz and /metrics. The model loads "
        "after the port is open; /readyz says 200 once it is warm. Each flag overrides its SEGSERVE_* "
        "variable (or .env line), which overrides the default shown; every other knob is a SEGSERVE_* "
        "variable only (src/segserve/settings.py lists them).",
        epilog=_EPILOG,
    )
    # flag, type, the setting it overrides, what it means
    for flag, kind, name, text in (
        ("--host", str, "host", "bind address"),
        ("--port", int, "port", "bind port"),
        ("--model", str, "model", "hub id or local checkpoint dir"),
        ("--device", str, "device", "cuda, mps or cpu; none: the best available"),
        ("--dtype", str, "dtype", "bfloat16, float16 or float32; none: bf16 on CUDA, else fp32"),
        ("--max-queue", int, "max_queue", "requests waiting beyond the running ones"),
        ("--workers", int, "workers", "inference threads, 1 per GPU"),
        ("--request-timeout", float, "request_timeout", "seconds of waiting + running before a 504"),
        ("--max-connections", int, "max_connections", "open connections; a request on one more gets 503"),
        ("--header-timeout", float, "header_timeout", "seconds for a request's headers to arrive before a 408"),
        ("--body-timeout", float, "body_timeout", "seconds a request body may stall before a 408"),
        ("--api-keys-file", str, "api_keys_file", "file with one accepted key per line"),
    ):
        srv.add_argument(flag, type=kind, default=None, help=f"{text} {_default(name)}")
    srv.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="KEY",
        help="accept this bearer token (repeat for several; adds to SEGSERVE_API_KEYS, comma-separated; "
        "default none: a key, --api-keys-file or --no-auth is required)",
    )
    srv.add_argument(
        "--no-auth",
        action="store_true",
        default=None,
        help=f"serve without any key, local use only {_switch('no_auth', True)}",
    )
    srv.add_argument(
        "--no-warmup",
        action="store_true",
        default=None,
        help=f"skip the warm-up inference; /readyz says 200 as soon as the model loads {_switch('warmup', False)}",
    )
    srv.add_argument(
        "--stay-up-on-load-error",
        action="store_true",
        default=None,
        help="if the model fails to load, keep serving 503 instead of exiting 1 "
        + _switch("exit_on_load_error", False),
    )
    srv.add_argument("--log-level", default=None, choices=LOG_LEVELS, help=f"log verbosity {_default('log_level')}")
    srv.set_defaults(func=cmd_serve)


def _add_convert(sub: Any) -> None:
    conv = sub.add_parser(
        "convert",
        help="convert the vision encoder and detector to OpenVINO ahead of time (the [cpu] extra)",
        description="Convert MODEL's vision encoder and detector to OpenVINO into the cache the server reads "
        "(SEGSERVE_OPENVINO_CACHE_DIR), so no server start pays the conversion (minutes and ~23 GB of "
        "memory for SAM 3). Run it where the memory is, e.g. when building an image; an existing, "
        "intact conversion is kept.",
        epilog=_EPILOG,
    )
    conv.add_argument("--model", default=None, help=f"hub id or local checkpoint dir {_default('model')}")
    conv.add_argument(
        "--cache-dir", default=None, help=f"where converted models go {_default('openvino_cache_dir')}"
    )
    conv.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from segserve.engine import openvino

    settings = load_settings(model=args.model, openvino_cache_dir=args.cache_dir)
    if not openvino.available():
        raise UsageError("the openvino package is missing: pip install 'segserve[cpu]'")
    from segserve.engine.loading import load_error_message, resolve_checkpoint

    # A checkpoint that can't be had fails here at once (one hub probe), not in the converter's retries.
    resolve_checkpoint(settings.model, settings.hub_probe_timeout)
    try:
        done = openvino.convert_checkpoint(settings.model, settings.openvino_cache_dir)
    except Exception as exc:  # hub, file and converter errors: one line, not a traceback
        print(f"segserve convert: error: {load_error_message(settings.model, exc)}", file=sys.stderr)
        return EXIT_FAILED
    for part, path, converted in done:
        print(f"{part}: {'converted' if converted else 'already converted'}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"segserve {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (InvalidParameterError, InvalidPromptError) as exc:
        print(f"segserve {args.command}: error: {_flag(exc.param)}{exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except GlossaryError as exc:  # SEGSERVE_GLOSSARY names a file with bad lines: the setting is wrong
        print(f"segserve {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SegserveError as exc:
        print(f"segserve {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _flag(param: str | None) -> str:
    """`--mask-threshold: ` for a field name, so the message points at what to change."""
    if param in FLAG_OF_FIELD:  # a visual-prompt field: the flag that sets it
        return f"{FLAG_OF_FIELD[param]}: "
    return f"--{param.replace('_', '-')}: " if param else ""


def load_settings(**overrides: Any) -> Settings:
    """`Settings()` from the environment with the given flags on top; bad values are a `UsageError`
    naming the flag (or the SEGSERVE_* variable) they came from."""
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        where = f"--{name.replace('_', '-')}" if name in given else f"SEGSERVE_{name.upper()}"
        raise UsageError(f"{where}: {first['msg']} (got {first.get('input')!r})") from None


# --- segment ---------------------------------------------------------------------------------
def cmd_segment(args: argparse.Namespace) -> int:
    from segserve.prompts import parse_prompt
    from segserve.types import SegmentRequest

    settings = load_settings(model=args.model, device=args.device)
    options = {
        "threshold": args.threshold,
        "mask_threshold": args.mask_threshold,
        "max_segments": args.max_segments,
        "mask_format": args.mask_format,
        "everything_mode": args.everything_mode,
        "label_language": args.label_language,
    }
    try:
        visual = visual_fields(args)  # --box, --point, ...: the wire format's fields
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None
    # Checked here, before any model loads, whichever way the image is segmented. A server reads
    # Chinese concepts with its own glossary: only a local run translates them here.
    if args.server:
        limits = {"max_concepts": settings.max_concepts, "max_concept_chars": settings.max_concept_chars}
        parse_prompt(args.prompt, **limits, translate=False)
        request = SegmentRequest.resolve(settings, **visual, **options)
    else:
        request = SegmentRequest.resolve(settings, prompt=args.prompt, **visual, **options)
    if args.server:
        result = _segment_remote(args, settings, {**options, **visual})
    else:
        result = _segment_local(args, settings, request)

    _print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(request.options.mask_format), indent=2))
    if args.cutout:
        args.cutout.mkdir(parents=True, exist_ok=True)
        for i, seg in enumerate(result):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in seg.label)[:40] or "segment"
            result.cutout(i).save(args.cutout / f"{seg.id:03d}_{safe}.png")
    if args.overlay:
        args.overlay.parent.mkdir(parents=True, exist_ok=True)
        result.overlay().save(args.overlay)
    return 0


def _segment_local(args: argparse.Namespace, settings: Settings, request: Any) -> Any:
    from segserve.images import decode_image

    path = Path(args.image)
    if not path.is_file():
        raise UsageError(f"no such image file: {path} (URLs need --server)")
    image = decode_image(
        path.read_bytes(), max_pixels=settings.max_image_pixels, max_aspect_ratio=settings.max_aspect_ratio
    )
    from segserve.engine.sam3 import Sam3Segmenter  # torch: only once the command line is known good

    request.check_inside(image.shape[:2])  # boxes and points within the image, before the model loads
    segmenter = Sam3Segmenter.from_settings(settings)
    if request.object_prompt is not None:  # --point / --multimask / --object: one object, by the tracker
        return segmenter.segment_object(image, request.object_prompt, request.options)
    return segmenter.segment(image, request.concepts, request.options)


def _segment_remote(args: argparse.Namespace, settings: Settings, options: dict[str, Any]) -> Any:
    from segserve.client import Client

    api_key = args.api_key or settings.api_key
    with Client(args.server, api_key=api_key) as client:
        # Options not given on the command line stay None, so the server's own defaults apply.
        result = client.segment(args.image, prompt=args.prompt, **options)
    if result.image is None and (args.cutout or args.overlay):
        result.image = _download_for_pictures(args.image, result.image_size, settings)
    return result


def _download_for_pictures(url: str, size: tuple[int, int], settings: Settings) -> Any:
    """The server fetched the URL; cutouts and overlays need the pixels here too, so fetch them once more.

    This runs on the user's own machine for a URL the user typed, so a plain httpx GET is right here
    (the SSRF guard in `segserve.api.fetch` protects a server from its clients, not a user from themselves).
    """
    import httpx

    from segserve.errors import ImageURLUnreachableError
    from segserve.images import decode_image

    try:
        response = httpx.get(url, follow_redirects=True, timeout=settings.url_timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ImageURLUnreachableError(f"could not download {url} for --cutout/--overlay: {exc}") from None
    rgb = decode_image(
        response.content, max_pixels=settings.max_image_pixels, max_aspect_ratio=settings.max_aspect_ratio
    )
    if rgb.shape[:2] != tuple(size):
        raise ImageURLUnreachableError(f"{url} changed between the server's fetch and ours; cannot draw cutouts")
    return rgb


def _print_table(result: Any) -> None:
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


# --- annotate (flags and command in segserve/annotate/cli.py) --------------------------------
def cmd_annotate(args: argparse.Namespace) -> int:
    return run_annotate(args, load_settings, UsageError)


# --- serve -----------------------------------------------------------------------------------
def serve_settings(args: argparse.Namespace) -> Settings:
    """The server's settings: the flags on top of the environment; `--api-key` adds to the keys."""
    settings = load_settings(
        host=args.host,
        port=args.port,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        max_queue=args.max_queue,
        workers=args.workers,
        request_timeout=args.request_timeout,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        api_keys_file=args.api_keys_file,
        no_auth=True if args.no_auth else None,
        warmup=False if args.no_warmup else None,
        exit_on_load_error=False if args.stay_up_on_load_error else None,
        log_level=args.log_level,
    )
    if args.api_key:
        keys = [k for k in settings.api_keys.split(",") if k.strip()] + list(args.api_key)
        settings = settings.replace(api_keys=",".join(keys))
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    settings = serve_settings(args)
    if settings.api_keys_file is not None and not Path(settings.api_keys_file).expanduser().is_file():
        where = "--api-keys-file" if args.api_keys_file else "SEGSERVE_API_KEYS_FILE"
        raise UsageError(f"{where}: no such file: {settings.api_keys_file}")
    try:
        from segserve.api import serve
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"the server needs the [server] extra ({exc.name} is not installed): in a checkout, run "
            "pip install -e '.[server]'"
        ) from None
    from segserve.engine.loading import select_device, select_dtype

    # A device this machine lacks is a wrong command line: say so now, not after the server started.
    select_dtype(settings.dtype, select_device(settings.device))
    # The engine's imports (transformers, seconds) before the port opens: even on a worker thread
    # they hold the GIL long enough to stall the probes' answers (up to 5 s on a cold disk cache).
    import segserve.engine.sam3  # noqa: F401
    serve.configure_logging(settings.log_level)
    return serve.run(settings, log_level=settings.log_level)


def _version() -> str:
    from segserve import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
