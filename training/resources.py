"""A memory ceiling for the process while it trains.

Parameters inside the published bounds can still ask for a lot of memory (many deep
trees); the time limits end such a run eventually, but it may hold more memory than the
machine has meanwhile. ``memory_ceiling`` watches the process's resident size while
training and stops the training (``MemoryCeilingExceeded``, raised in the training
thread) once it passes ``PENGUIN_WORKER_MAX_MEMORY_MB``; the run then fails saying so.
Celery also replaces a pool process that ends a task above the same size
(``worker_max_memory_per_child``), so memory a run left fragmented is given back.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class MemoryCeilingExceeded(Exception):
    """Training made the process grow past its memory ceiling."""


def resident_mb() -> float:
    """This process's resident memory in MiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_MB
    except OSError:
        return 0.0


@contextmanager
def memory_ceiling(limit_mb: float, *, interval: float = 0.05) -> Iterator[None]:
    """Raise MemoryCeilingExceeded in this thread if the process grows past ``limit_mb``."""
    target = threading.get_ident()
    lock = threading.Lock()
    stop = threading.Event()
    fired = {"pending": False}

    def watch() -> None:
        while not stop.wait(interval):
            if resident_mb() > limit_mb:
                with lock:
                    if stop.is_set():
                        return
                    fired["pending"] = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(target), ctypes.py_object(MemoryCeilingExceeded)
                    )
                return

    watcher = threading.Thread(target=watch, name="memory-ceiling", daemon=True)
    watcher.start()
    try:
        yield
    except MemoryCeilingExceeded:
        fired["pending"] = False
        raise
    finally:
        with lock:
            stop.set()
            if fired["pending"]:
                # Not raised in the block: withdraw it so it is not raised elsewhere.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
        watcher.join()
    if fired["pending"]:
        # The ceiling was passed, but the exception never left the block: it fell in code
        # whose exceptions Python ignores (a __del__, a weakref callback, which a garbage
        # collection can run anywhere) or in a handler that swallowed it. Passed is passed.
        raise MemoryCeilingExceeded()
