"""The HTTP API: `create_app(settings)` builds the FastAPI app; `serve.py` runs it under uvicorn.

Importing this package does no work (no model, no threads): everything starts in the app's lifespan.
"""

from __future__ import annotations

from segserve.api.app import create_app

__all__ = ["create_app"]
