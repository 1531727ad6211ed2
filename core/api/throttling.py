"""Rate limits shared by every worker through the cache (Redis when configured).

DRF's own throttles keep a list of request timestamps per client and rewrite it on every
request: at a generous rate like 6000/min that is a 6000-element list pickled through
Redis per request, and two workers updating it at once lose each other's counts. These
count in fixed windows with one atomic ``cache.incr`` instead, so the cost is constant and
the limit holds across processes.

A cache that is down or hung must not take the service down with it (the limit protects
the service): after one failed or timed-out count, requests are counted in this process
for ``OUTAGE_RETRY_SECONDS`` before the cache is tried again, so a hung Redis costs one
socket timeout per process every few seconds, not one per request. The outage is logged
once when it starts and once when the cache is back.

With Redis, each worker counts in memory and adds its count to Redis every ``batch``
requests of a client (``PENGUIN_THROTTLE_BATCH``, at most 1% of the limit): one round trip
per batch instead of one per request. A worker's estimate is the shared total it read at its
last flush plus what it counted since, so each worker admits at most ``batch`` requests past
the limit before it learns the total: the limit holds within workers × batch per window
(4 workers, 6000/min, batch 50: 200 requests, 3%). Limits under 200 are counted exactly.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from typing import Any

from django.conf import settings
from rest_framework import throttling
from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
_redis_clients: dict[str, Any] = {}
OUTAGE_RETRY_SECONDS = 5.0


class _LocalCounts:
    """Fixed-window counts kept in this process while the shared cache is unavailable."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[float, int]] = {}  # key → (window end, count)
        self.retry_at = 0.0  # monotonic time before which the cache is not asked
        self.in_outage = False

    def incr(self, key: str, window_ends_at: float, now: float) -> int:
        with self.lock:
            if len(self.counts) > 10_000:
                self.counts = {k: v for k, v in self.counts.items() if v[0] > now}
            _, count = self.counts.get(key, (window_ends_at, 0))
            self.counts[key] = (window_ends_at, count + 1)
            return count + 1

    def cache_failed(self, exc: Exception) -> None:
        with self.lock:
            self.retry_at = time.monotonic() + OUTAGE_RETRY_SECONDS
            first = not self.in_outage
            self.in_outage = True
        if first:
            logger.warning(
                "rate limits are counted in this process while the cache is unavailable (%s: %s); "
                "trying it again every %gs",
                type(exc).__name__,
                exc,
                OUTAGE_RETRY_SECONDS,
            )

    def cache_answered(self) -> None:
        if self.in_outage:
            with self.lock:
                self.in_outage, self.counts = False, {}
            logger.warning("the rate-limit cache answers again; rate limits are shared by every worker again")


_local_by_cache: dict[str, _LocalCounts] = {}


def _local_counts() -> _LocalCounts:
    """The outage state of the configured cache (one per cache location)."""
    location = str(settings.CACHES.get("default", {}).get("LOCATION", ""))
    state = _local_by_cache.get(location)
    if state is None:
        state = _local_by_cache.setdefault(location, _LocalCounts())
    return state


class PendingCounts:
    """This process's counts not yet in Redis, per key, for the current window of each duration."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[int, tuple[int, dict[str, list[int]]]] = {}  # duration -> (window, counts)

    def state(self, duration: int, window: int, key: str) -> list[int]:
        """``[counted here since the last flush, shared total read at the last flush]`` (under lock)."""
        current, counts = self.windows.get(duration, (None, None))
        if current != window:
            counts = {}
            self.windows[duration] = (window, counts)
        return counts.setdefault(key, [0, 0])


_pending_counts = PendingCounts()


@functools.lru_cache(maxsize=64)
def _parsed_rate(rate: str | None) -> tuple[int | None, int | None]:
    """DRF's ``parse_rate``, once per rate string instead of once per request."""
    return throttling.SimpleRateThrottle.parse_rate(None, rate)


def _redis_client() -> Any | None:
    """One redis-py client per process for the default cache, when that cache is Redis."""
    config = settings.CACHES.get("default", {})
    if config.get("BACKEND") != REDIS_BACKEND:
        return None
    location = config["LOCATION"]
    location = location.split(",")[0] if isinstance(location, str) else location[0]
    client = _redis_clients.get(location)
    if client is None:
        import redis

        options = {k: v for k, v in config.get("OPTIONS", {}).items() if k not in {"serializer", "pool_class"}}
        client = redis.Redis.from_url(location, **options)
        _redis_clients[location] = client
    return client


class FixedWindowRateThrottle(throttling.SimpleRateThrottle):
    """At most ``num_requests`` per ``duration``-second window per client and scope."""

    def get_rate(self) -> str | None:
        # Read the rate when the throttle is built (per request), not at import time, so a
        # changed REST_FRAMEWORK setting (tests, reload) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends_at = (window + 1) * self.duration
        key = f"{self.key}_{window}"
        _local = _local_counts()
        if time.monotonic() < _local.retry_at:
            count = _local.incr(key, self.window_ends_at, self.now)
        else:
            try:
                count = self._count(key, window)
            except Exception as exc:  # cache down or hung: count here rather than fail or wait
                _local.cache_failed(exc)
                count = _local.incr(key, self.window_ends_at, self.now)
            else:
                _local.cache_answered()
        return count <= self.num_requests

    def get_ident(self, request) -> str:
        """DRF's rule (``NUM_PROXIES``), read from ``META``: ``request.headers`` builds a mapping
        of every header, which cost more than the rest of the throttle."""
        meta = request.META
        xff = meta.get("HTTP_X_FORWARDED_FOR")
        remote_addr = meta.get("REMOTE_ADDR")
        num_proxies = api_settings.NUM_PROXIES
        if num_proxies is not None:
            if num_proxies == 0 or xff is None:
                return remote_addr
            addrs = xff.split(",")
            return addrs[-min(num_proxies, len(addrs))].strip()
        return "".join(xff.split()) if xff else remote_addr

    def parse_rate(self, rate):
        return _parsed_rate(rate)

    def batch(self) -> int:
        return max(1, min(settings.PENGUIN_THROTTLE_BATCH, self.num_requests // 100))

    def _count(self, key: str, window: int) -> int:
        client = _redis_client()
        if client is not None and self.batch() > 1:
            return self._count_batched(client, key, window)
        if client is not None:
            # One round trip: INCR, and give the key its lifetime when this request created it.
            # (Through Django's cache API the same count costs add + exists + incrby, and a new
            # redis-py client object per call: a third of a classify request's CPU.)
            full_key = self.cache.make_and_validate_key(key)
            pipeline = client.pipeline(transaction=False)
            pipeline.incr(full_key)
            pipeline.expire(full_key, self.duration + 1, nx=True)
            return int(pipeline.execute()[0])
        if self.cache.add(key, 1, timeout=self.duration + 1):
            return 1
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add() and incr(): this request opens a new window
            self.cache.add(key, 1, timeout=self.duration + 1)
            return 1

    def _count_batched(self, client: Any, key: str, window: int) -> int:
        """This request's place in the window as far as this process knows (see the module docstring)."""
        with _pending_counts.lock:
            state = _pending_counts.state(self.duration, window, key)
            state[0] += 1
            if state[0] < self.batch():
                return state[1] + state[0]
            pending, state[0] = state[0], 0
        full_key = self.cache.make_and_validate_key(key)
        pipeline = client.pipeline(transaction=False)
        pipeline.incrby(full_key, pending)
        pipeline.expire(full_key, self.duration + 1, nx=True)
        try:
            total = int(pipeline.execute()[0])
        except Exception:
            with _pending_counts.lock:
                state[0] += pending  # kept for the next flush
            raise
        with _pending_counts.lock:
            state[1] = total
            return total + state[0]

    def wait(self) -> float:
        """Seconds until the window closes (sent as Retry-After, rounded up)."""
        return max(1, math.ceil(self.window_ends_at - self.timer()))


class AnonRateThrottle(FixedWindowRateThrottle, throttling.AnonRateThrottle):
    """Anonymous callers, per client IP (``PENGUIN_THROTTLE_ANON``)."""

    scope = "anon"


class UserRateThrottle(FixedWindowRateThrottle, throttling.UserRateThrottle):
    """Authenticated callers, per user (``PENGUIN_THROTTLE_USER``)."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        # DRF's UserRateThrottle also counts anonymous callers by IP; AnonRateThrottle already
        # does, so counting them twice would only cost a second cache round trip per request.
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)
