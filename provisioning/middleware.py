"""Request guards that hold for every door (API, pages, admin)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


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
