"""Request guards that hold for every door (API, pages, admin)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger("provisioning")


class BodySizeLimitMiddleware:
    """Answer 413 to a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE before anybody reads it. Django
    checks that limit only when it reads a body itself; DRF's parsers read the stream directly."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        if limit is not None and length > limit:
            return JsonResponse(
                {"detail": f"The request body has {length} bytes; at most {limit} are accepted."}, status=413
            )
        return self.get_response(request)


class QueryNulMiddleware:
    """Answer 400 to a query string holding a NUL character. PostgreSQL cannot store or compare text
    with one, so any filter, search or page number it reached would fail as a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            return JsonResponse({"detail": "Query parameters may not contain NUL characters."}, status=400)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """Answer 503 with Retry-After, not 500, when the database cannot serve a request (down, restarting,
    out of connections, locked): the client should come back later, nobody should file a bug."""

    retry_after = 30

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.error("%s %s: the database is unavailable: %s", request.method, request.path, exception)
        message = (
            f"The database is unavailable right now, so the request could not be completed. Try again in "
            f"{self.retry_after} seconds; if it was meant to create something, look for it first: it may "
            f"have been stored before the connection was lost."
        )
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"message": message}), status=503)
        response["Retry-After"] = str(self.retry_after)
        return response
