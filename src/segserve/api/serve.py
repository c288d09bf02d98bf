"""`segserve serve`: the command-line flags and the uvicorn runner.

Flags override `SEGSERVE_*` variables, which override the defaults in `Settings`. uvicorn handles
SIGTERM/SIGINT: it stops accepting connections, lets running requests finish for up to
`shutdown_grace` seconds, runs the app's shutdown (the inference threads end), and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

log = logging.getLogger("segserve.serve")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` subcommand's flags; each defaults to None so the Settings value applies."""
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 in Docker)")
    parser.add_argument("--port", type=int, default=None, help="bind port (default 8000)")
    parser.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="KEY",
        help="accept this bearer token (repeat for several; adds to SEGSERVE_API_KEYS)",
    )
    parser.add_argument("--api-keys-file", default=None, metavar="FILE", help="file with one key per line")
    parser.add_argument(
        "--no-auth", action="store_true", default=None, help="serve without any key (local use only; logs a warning)"
    )
    parser.add_argument("--model", default=None, help="model id or local checkpoint dir (default facebook/sam3)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: bf16 on CUDA)")
    parser.add_argument("--max-queue", type=int, default=None, help="requests waiting beyond the running ones")
    parser.add_argument("--workers", type=int, default=None, help="inference threads (1 per GPU)")
    parser.add_argument("--request-timeout", type=float, default=None, help="seconds before a 504")
    parser.add_argument("--no-warmup", action="store_true", default=None, help="skip the warm-up inference")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=cmd_serve)


def settings_from_args(args: argparse.Namespace) -> Any:
    from segserve.settings import Settings

    overrides: dict[str, Any] = {}
    for name in ("host", "port", "model", "device", "dtype", "max_queue", "workers", "request_timeout"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if args.api_keys_file:
        overrides["api_keys_file"] = args.api_keys_file
    if args.no_auth:
        overrides["no_auth"] = True
    if args.no_warmup:
        overrides["warmup"] = False
    settings = Settings(**overrides)
    if args.api_key:
        keys = [k for k in settings.api_keys.split(",") if k.strip()] + list(args.api_key)
        settings = settings.model_copy(update={"api_keys": ",".join(keys)})
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    settings = settings_from_args(args)
    return run(settings, log_level=args.log_level)


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run(settings: Any, *, log_level: str = "info", app: Any = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a graceful stop, 2 when the configuration is refused."""
    import uvicorn

    from segserve.api.app import NoAPIKeyError, create_app

    if app is None:
        try:
            app = create_app(settings)
        except NoAPIKeyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,  # keep our logging setup; uvicorn's own loggers propagate to it
        access_log=False,  # the app logs one line per request, with its request id
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises a captured SIGTERM after its graceful shutdown, with the handler that was in
    # place before it started; the default one would end the process with status 143. A stop asked
    # for by SIGTERM that completed gracefully is a success (exit 0) for Docker, systemd and k8s.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None) if in_main else None
    try:
        server.run()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    # uvicorn exits the process itself when it cannot bind; reaching here means a clean stop.
    return 0 if server.started else 1
