"""Artifact files: where they live, atomic writes, hashing and verified loading.

Layout under ``PENGUIN_ARTIFACTS_DIR``:

- ``models/<name>_model.pkl``: the drop-in folder of the earlier service. A file copied
  here is registered as a discovered version; deleting it withdraws that version.
- ``registry/<name>/v<N>/``: each trained version's own folder (``model.joblib``, its
  confusion-matrix picture, the ONNX export). Never overwritten: versions are immutable.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import joblib
from django.conf import settings

from core.hashing import sha256_bytes
from core.paths import PathOutside, path_within

DROP_SUFFIX = "_model.pkl"
DROP_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]{0,63})_model\.pkl$")


class ArtifactError(Exception):
    """An artifact cannot be used; the message is safe to show to a user."""


def root() -> Path:
    return Path(settings.PENGUIN_ARTIFACTS_DIR)


def drop_dir() -> Path:
    return root() / "models"


def version_dir(model_name: str, number: int) -> Path:
    return root() / "registry" / model_name / f"v{number}"


def absolute(relative: str) -> Path:
    """The file a registry path names, which is always inside the artifacts folder.

    A registry row can only name files under ``PENGUIN_ARTIFACTS_DIR``: an absolute path or
    a ``..`` is refused, so someone who can write the database but not that folder cannot
    make the service unpickle a file of their choosing (docs/security.md).
    """
    try:
        return path_within(root(), relative)
    except PathOutside:
        raise ArtifactError(f"artifact path {relative[:100]!r} is not inside the artifacts folder; refused") from None


def is_file(relative: str) -> bool:
    try:
        return absolute(relative).is_file()
    except ArtifactError:
        return False


def relative(path: Path) -> str:
    return path.resolve().relative_to(root().resolve()).as_posix()


def ensure_dirs() -> None:
    for folder in (drop_dir(), root() / "registry"):
        folder.mkdir(parents=True, exist_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either absent or complete, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def dump(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def read_verified(relative_path: str, expected_sha256: str) -> bytes:
    """The file's bytes, after checking them against the registry's hash."""
    path = absolute(relative_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact file {relative_path} is missing") from None
    except OSError as exc:
        raise ArtifactError(f"artifact file {relative_path} cannot be read ({exc.strerror})") from None
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ArtifactError(
            f"artifact file {relative_path} does not match its registry hash "
            f"(expected sha256 {expected_sha256[:12]}…, found {actual[:12]}…); refused without loading"
        )
    return data


def unpickle(data: bytes) -> Any:
    """Load joblib/pickle bytes; any failure becomes an ArtifactError with the reason."""
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:  # a junk file can raise nearly anything while unpickling
        raise ArtifactError(f"not a loadable model file ({type(exc).__name__}: {str(exc)[:200]})") from None
