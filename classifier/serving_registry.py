"""Each serving process's view of the registry, refreshed without a restart.

At most once every ``PENGUIN_REGISTRY_REFRESH_SECONDS`` (1 s by default) a process
(1) compares the drop-in folder's names, sizes and mtimes with what it saw last and runs
``registry_sync`` when they changed, and (2) reads the registry's generation number and
reloads the active versions when another process changed them. Between checks a request
costs no file-system scan and no registry query: a new version or a dropped-in file is
picked up by every gunicorn worker within about a second.

Each check also stats the active versions' files (one ``stat`` per file, nothing read): a
file that changed since the last check is hashed again, and one that no longer matches
the registry marks its version broken. Otherwise a process that loaded a version before
its file was tampered with or truncated would go on serving it from memory while every
process that loads it afresh refuses it.
"""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings

from . import artifacts, selectors
from .selectors import ServingEntry
from .services import sync
from .services.registry import ModelNotFound, model_version_mark_broken


class ServingRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._generation: int | None = None
        self._fingerprint: tuple | None = None
        self._entries: dict[str, ServingEntry] = {}
        self._file_stats: dict[str, tuple | None] = {}  # file → (inode, size, mtime, ctime) last seen

    def invalidate(self) -> None:
        """Forget what was seen so the next call re-reads disk and registry."""
        with self._lock:
            self._checked_at = float("-inf")
            self._generation = None
            self._fingerprint = None
            self._file_stats = {}

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < settings.PENGUIN_REGISTRY_REFRESH_SECONDS:
            return
        with self._lock:
            if not force and now - self._checked_at < settings.PENGUIN_REGISTRY_REFRESH_SECONDS:
                return
            fingerprint = sync.drop_folder_fingerprint()
            if fingerprint != self._fingerprint:
                sync.registry_sync()
            generation = selectors.registry_generation()
            if generation != self._generation:
                self._entries = selectors.registry_active_entries()
            if self._files_changed_and_refused():
                generation = selectors.registry_generation()
                self._entries = selectors.registry_active_entries()
            self._fingerprint = fingerprint
            self._generation = generation
            self._checked_at = time.monotonic()

    def _files_changed_and_refused(self) -> bool:
        """Stat the active versions' files; re-verify changed ones. True if one was marked broken."""
        seen: dict[str, tuple | None] = {}
        refused = False
        for entry in self._entries.values():
            if entry.broken_reason:
                continue
            for relative, sha256 in ((entry.artifact_path, entry.sha256), (entry.onnx_path, entry.onnx_sha256)):
                if not relative:
                    continue
                try:
                    path = str(artifacts.absolute(relative))
                    stat = os.stat(path)
                    signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
                except artifacts.ArtifactError:
                    continue  # refused when the version is loaded
                except OSError:
                    signature = None
                seen[path] = signature
                if path not in self._file_stats or self._file_stats[path] == signature:
                    continue
                try:
                    artifacts.read_verified(relative, sha256)
                except artifacts.ArtifactError as exc:
                    model_version_mark_broken(version_id=entry.version_id, reason=str(exc))
                    refused = True
        self._file_stats = seen
        return refused

    def entries(self) -> dict[str, ServingEntry]:
        self.refresh()
        return self._entries

    def entry(self, model_name: str, *, version_number: int | None = None) -> ServingEntry:
        """The version to serve for ``model_name``; raises ModelNotFound."""
        if version_number is not None:
            self.refresh()
            found = selectors.model_version_entry(model_name=model_name, number=version_number)
            if found is None:
                raise ModelNotFound(
                    f"Model {model_name!r} has no version {version_number}; "
                    f"GET /api/v1/models/{model_name}/versions lists them."
                )
            return found
        found = self.entries().get(model_name)
        if found is None:
            raise ModelNotFound(f"Model {model_name[:80]!r} not found; GET /models lists the available models.")
        return found


live_registry = ServingRegistry()
