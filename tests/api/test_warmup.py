"""The start-up warm-up pays every request kind's one-off costs before /readyz says 200 (issue 10:
the first run after a fresh start stalled on them). Checked by what the engine holds and counted
when the server turns ready, before any request: no timing."""

from __future__ import annotations

from api_support import make_settings, png, upload, wait_ready
from fastapi.testclient import TestClient

from segserve.api import create_app


def test_the_warm_up_loads_the_tracker_and_the_vocabulary_before_ready(tiny_model_path):
    app = create_app(make_settings(model=str(tiny_model_path), warmup=True))
    with TestClient(app) as client:
        wait_ready(client, timeout=120)
        engine = app.state.segserve.segmenter
        # Grid mode's tracker is loaded and has run once: the first empty prompt loads nothing.
        assert engine.grid._tracker is not None
        assert engine.stats["tracker_passes"] == 1
        # Vocabulary mode's concepts are already encoded: the first vocabulary request runs no text pass.
        assert all(engine.text_cache.get(c.text) is not None for c in engine.vocabulary)
        text_passes = engine.stats["text_passes"]
        r = upload(client, png(), prompt="", everything_mode="vocabulary", threshold=0.9)
        assert r.status_code == 200, r.text
        assert engine.stats["text_passes"] == text_passes
        r = upload(client, png(), prompt="")  # grid mode, on the tracker loaded at start-up
        assert r.status_code == 200, r.text
        assert engine.stats["tracker_passes"] > 1
