#!/usr/bin/env python3
"""Container health check: exit 0 if http://127.0.0.1:$TAD_PORT/readyz answers 200.

    python /usr/local/bin/tad-healthcheck [PATH]        (default PATH: /readyz)

Used by the Dockerfile's HEALTHCHECK and docker-compose.yml (the slim image has no curl);
tests/deploy runs it against the service on loopback. Standard library only; proxies from the
environment are ignored (the check is always local).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/readyz"
    url = f"http://127.0.0.1:{os.environ.get('TAD_PORT', '8000')}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=float(os.environ.get("TAD_HEALTHCHECK_TIMEOUT", "4"))) as r:
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
