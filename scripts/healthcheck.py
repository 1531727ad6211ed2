"""Container health probe: GET a path from this container's gunicorn; exit 0 when it answers 200.

Usage: python scripts/healthcheck.py [PATH]    (default /readyz)

docker-compose.yml runs it as the web service's healthcheck (the slim image has no curl).
The port comes from GUNICORN_BIND, like gunicorn's own, and the Host header is the first
of DJANGO_ALLOWED_HOSTS, so the probe passes Django's host check whatever the deployment's
host names are. Standard library only: it starts in a few milliseconds.
"""

from __future__ import annotations

import http.client
import os
import sys

TIMEOUT_SECONDS = 5.0


def target() -> tuple[str, int]:
    """Where gunicorn listens: GUNICORN_BIND (default 0.0.0.0:8000), a wildcard meaning loopback."""
    bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").split(",")[0].strip()
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in {"", "0.0.0.0", "::"}:
        host = "127.0.0.1"
    return host, int(port)


def host_header() -> str:
    """A name Django accepts: the first concrete entry of DJANGO_ALLOWED_HOSTS."""
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            return entry.lstrip(".")  # ".example.org" also matches example.org itself
    return "localhost"


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/readyz"
    host, port = target()
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path, headers={"Host": host_header(), "User-Agent": "healthcheck"})
        response = connection.getresponse()
        body = response.read(2000).decode("utf-8", "replace")
    except OSError as exc:
        print(f"{path}: no answer from {host}:{port} ({exc})", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print(f"{path}: {response.status} {body}")
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
