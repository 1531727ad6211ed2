"""The kserve SDK's own venv for tests/test_v2_clients.py.

Its pins clash with ours (protobuf, pandas), so it lives in a venv of its own under ``var/``,
built from ``tests/clients/requirements-kserve.txt`` and reused while that file is unchanged.
``make test`` builds it before the suite starts (``python -m tests.support.kserve_client``), so
no test installs packages; a test run without make builds it on first use.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "tests" / "clients" / "requirements-kserve.txt"
VENV = REPO / "var" / "kserve-client-venv"


def kserve_python() -> Path:
    """The venv's python, built first if missing or made from another requirements file."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.sha256"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0:
        raise RuntimeError(f"installing the kserve client failed:\n{install.stderr[-4000:]}")
    stamp.write_text(digest)
    return python


if __name__ == "__main__":
    print(f"kserve client: {kserve_python()}")
