"""`python -m segserve.api.healthcheck`: exit 0 when this machine's server answers /readyz with 200.

For Docker's HEALTHCHECK (the image has no curl); reads the port from the same Settings as the server.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from segserve.settings import Settings


def main() -> int:
    port = Settings().port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
