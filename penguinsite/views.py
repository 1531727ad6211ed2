"""Pages of the site itself (not of an app): the landing page at /."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    """A small page for a person who opens the service's address: where the admin, docs and endpoints are."""
    return render(request, "penguinsite/landing.html")
