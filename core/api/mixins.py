"""What every API v1 view does before its handler runs."""

from __future__ import annotations

import time

from rest_framework.permissions import SAFE_METHODS


# No docstring here or on other view mixins: drf-spectacular would show it as the description
# of every operation of a view without a docstring of its own.
class ApiV1Mixin:
    # Times the request and reads a write's body first. Parsers: the REST_FRAMEWORK default,
    # the size-bounded JSON parser.

    def initial(self, request, *args, **kwargs) -> None:
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)  # authentication, permissions, rate limits
        if request.method not in SAFE_METHODS:
            # Read the body before looking anything up: an oversized or broken body is
            # refused (413/400) the same way on every write, whatever it addresses.
            request.data  # noqa: B018
