"""wrk, the load generator of the single-classify section: found, installed when we may, and run.

wrk (a C program on epoll, Debian package ``wrk``) keeps 8 connections busy with 2 threads and
spends a fraction of the CPU a Python client would, so on a 2-core machine more of the CPU goes
to the server under test. ``bench/post.lua`` sets the POST and prints the run's figures as one
JSON line, which ``wrk_load`` reads back.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "post.lua"
INSTALL_HINT = "apt-get install -y wrk"


def wrk_path() -> str:
    """The wrk binary; installed with apt-get when missing and we are root, else a clear stop."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"wrk is not installed; installing it ({INSTALL_HINT})", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
        if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:
            subprocess.run(["apt-get", "update"], **quiet)
            subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        f"the single-classify bench needs wrk, the HTTP load generator: install it with `sudo {INSTALL_HINT}` "
        "(Debian/Ubuntu; `brew install wrk` on macOS), or skip it with --only training compute batch"
    )


@dataclass
class WrkResult:
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    p50: float = float("nan")  # ms
    p99: float = float("nan")  # ms
    first_error: str = ""
    cpu_seconds: float = 0.0  # the server's workers
    db_cpu_seconds: float = 0.0  # their PostgreSQL sessions
    client_cpu_seconds: float = 0.0  # wrk itself

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_load(
    *, port: int, path: str, body_file: Path, seconds: int = 2, connections: int = 8, threads: int = 2
) -> WrkResult:
    """One wrk run against 127.0.0.1:``port``; every answer but 2xx/3xx counts as an error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--timeout", "10s"]
    argv += ["-s", str(SCRIPT), f"http://127.0.0.1:{port}{path}", "--", str(body_file)]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((line for line in completed.stdout.splitlines() if line.startswith("WRK ")), None)
    if completed.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}")
    figures = json.loads(line[4:])
    errors = sum(figures[key] for key in ("connect", "read", "write", "status", "timeout"))
    result = WrkResult(
        requests=figures["requests"] - figures["status"],
        seconds=figures["duration_us"] / 1e6,
        errors=errors,
        p50=figures["p50_us"] / 1000,
        p99=figures["p99_us"] / 1000,
        client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
    if errors:
        result.first_error = ", ".join(
            f"{figures[key]} {key}" for key in ("connect", "read", "write", "status", "timeout") if figures[key]
        )
    return result
