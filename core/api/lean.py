"""A lean way through DRF for anonymous calls to the predict doors.

DRF spends more CPU on a one-penguin POST than the model does: the Request wrapper,
authenticators that find no credentials, content negotiation with a single renderer, the
renderer and the Response's finalisation. For a caller that sends no credentials (no
``Authorization`` header, no cookie) ``LeanPostMixin`` does what those steps would decide
anyway, directly: the anonymous rate limit, the size-bounded JSON body (orjson), the view's
own handler, and errors through the same exception handler, rendered with orjson. Anything
else (credentials, another method, another content type) takes DRF's full path, so the
schema, the answers and the errors stay what they are.
"""

from __future__ import annotations

import time

import orjson
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .parsers import BoundedJSONParser, json_body_load

_ANONYMOUS = AnonymousUser()
_CREDENTIALS = ("HTTP_AUTHORIZATION", "HTTP_COOKIE")


def orjson_response(response: Response) -> HttpResponse:
    """A DRF Response's data as compact UTF-8 JSON (what DRF's JSONRenderer writes), headers kept."""
    answer = HttpResponse(orjson.dumps(response.data), status=response.status_code, content_type="application/json")
    for header, value in response.items():
        if header != "Content-Type":
            answer[header] = value
    return answer


def _body(request) -> object:
    return json_body_load(BoundedJSONParser.read_bounded(request, request.META), numbers_only=True)


# No docstring: drf-spectacular would show it as the description of the view's operations.
class LeanPostMixin:
    # ``lean_actions``: the handlers (method names, or viewset action names) that anonymous
    # callers may reach through the lean path; each must be open to anonymous callers.
    lean_actions: frozenset[str] = frozenset({"post"})

    def dispatch(self, request, *args, **kwargs):
        if not self._lean(request):
            return super().dispatch(request, *args, **kwargs)
        self.args, self.kwargs, self.request = args, kwargs, request
        self.headers = {"Allow": ", ".join(self.allowed_methods), "Vary": "Accept"}
        request.user = _ANONYMOUS
        try:
            self.lean_initial(request)
            request.query_params = request.GET
            request.data = _body(request)
            response = getattr(self, request.method.lower())(request, *args, **kwargs)
        except Exception as exc:
            response = self.lean_exception(exc, request)
        for header, value in self.headers.items():
            response.setdefault(header, value)
        return orjson_response(response) if isinstance(response, Response) else response

    def _lean(self, request) -> bool:
        if not settings.PENGUIN_LEAN_PREDICT or request.method != "POST":
            return False
        meta = request.META
        if any(name in meta for name in _CREDENTIALS) or getattr(request, "_force_auth_user", None) is not None:
            return False  # (the last: how DRF's test client signs a request in)
        action = getattr(self, "action_map", {}).get("post", "post")
        if action not in self.lean_actions:
            return False
        # The one parser these views have: JSON, any content type for the compatible door.
        media = self.parser_classes[0].media_type if len(self.parser_classes) == 1 else ""
        content_type = meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if media != "*/*" and not (media == "application/json" and content_type == media):
            return False
        if action != "post":
            self.action = action
        return True

    def lean_initial(self, request) -> None:
        """What DRF's ``initial`` does for an anonymous caller: the version timer and the rate limits."""
        self.format_kwarg = None
        self.started = time.perf_counter()
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())

    def lean_exception(self, exc: Exception, request) -> Response:
        context = {"view": self, "args": self.args, "kwargs": self.kwargs, "request": request}
        response = api_settings.EXCEPTION_HANDLER(exc, context)
        if response is None:
            raise exc
        response.exception = True
        return response
