"""`segserve serve`'s runner: the app under uvicorn (the flags are parsed in `segserve.cli`), with
the header timeout and connection cap of api/protocol.py.

uvicorn handles
SIGTERM/SIGINT: it stops accepting connections, lets running requests finish for up to
`shutdown_grace` seconds, runs the app's shutdown (the inference threads end), and exits 0.
SIGHUP re-reads the Chinese glossary (`SEGSERVE_GLOSSARY`), keeping the old one if the new has errors.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from segserve.settings import Settings

log = logging.getLogger("segserve.serve")


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run(settings: Settings, *, log_level: str = "info", app: Any = None, http: str = "auto") -> int:
    """Serve until SIGTERM/SIGINT: 0 after a graceful stop, 2 when the configuration is refused,
    1 when the model failed to load (unless `settings.exit_on_load_error` is off: then it serves 503).
    `http`: uvicorn's HTTP/1.1 parser, "auto" (httptools when installed), "httptools" or "h11"."""
    import uvicorn

    from segserve.api.app import NoAPIKeyError, create_app
    from segserve.api.protocol import protocol_class
    from segserve.prompts.lexicon import GlossaryError

    if app is None:
        try:
            app = create_app(settings)
        except (NoAPIKeyError, GlossaryError) as exc:
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
        # uvicorn's protocol plus a header timeout and a connection cap (answered with JSON 408 / 503)
        http=protocol_class(settings, http),
    )
    state = getattr(app.state, "segserve", None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Told first, so requests still waiting when the grace period ends get a JSON 503
            # instead of being cut off (uvicorn cancels them at `timeout_graceful_shutdown`).
            if state is not None and not self.should_exit:
                state.begin_shutdown(settings.shutdown_grace)
            super().handle_exit(sig, frame)

    server = Server(config)
    if state is not None:
        # A server that can never answer is better dead: an orchestrator restarts it, a person sees it.
        state.on_fatal = lambda: setattr(server, "should_exit", True)
    # uvicorn re-raises a captured SIGTERM after its graceful shutdown, with the handler that was in
    # place before it started; the default one would end the process with status 143. A stop asked
    # for by SIGTERM that completed gracefully is a success (exit 0) for Docker, systemd and k8s.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None) if in_main else None
    previous_hup = _reload_glossary_on_sighup(settings) if in_main else None
    try:
        server.run()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
            if previous_hup is not None:
                signal.signal(signal.SIGHUP, previous_hup)
    if state is not None and state.load_error is not None and settings.exit_on_load_error:
        return 1
    # uvicorn exits the process itself when it cannot bind; reaching here means a clean stop.
    return 0 if server.started else 1


def _reload_glossary_on_sighup(settings: Settings) -> Any:
    """SIGHUP re-reads `settings.glossary` (on bad lines the old one stays, the errors are logged).
    Returns the handler it replaced; None where there is no SIGHUP (Windows) or no glossary."""
    if settings.glossary is None or not hasattr(signal, "SIGHUP"):
        return None
    from segserve.prompts.lexicon import reload_glossary

    def on_hup(signum: int, frame: Any) -> None:
        # On a thread: the handler interrupts the event loop's thread, which may hold the lexicon's lock.
        threading.Thread(target=reload_glossary, args=(settings.glossary,), name="glossary-reload").start()

    return signal.signal(signal.SIGHUP, on_hup)
