"""What `make run` and `make test` would do, read from make's own dry run (nothing is run)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.processes import REPO


def dry_run(*args: str) -> str:
    make = shutil.which("make")
    if not make:
        pytest.skip("make is not installed")
    # -B: as on a fresh checkout, every step is due.
    # Run as its own make, also when the suite itself runs under `make test` (no inherited flags).
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        [make, "--no-print-directory", "-n", "-B", *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_the_runtime_requirements_only_with_progress():
    steps = dry_run("run")
    installs = [line for line in steps.splitlines() if "pip install" in line and " -r " in line]
    assert installs == [".venv/bin/pip install --progress-bar on -r requirements.txt"]
    assert "requirements-dev.txt" not in steps


def test_make_test_adds_the_test_tools():
    steps = dry_run("test")
    assert "-r requirements.txt" in steps and "-r requirements-dev.txt" in steps


def test_make_run_listens_where_host_and_port_say():
    steps = dry_run("run", "HOST=0.0.0.0", "PORT=8123")
    assert "--bind 0.0.0.0:8123" in steps.splitlines()[-1]
