"""`Idempotency-Key` on the API's POSTs: a viewset mixin that holds the key for the request
(`provisioning.services.idempotency_key_claim`) and hands the answer over when it is ready.

The key is claimed after authentication and before the rate limits, so a repeat neither counts nor
runs; the body is read (and fingerprinted with the method and the path) before anybody parses it.
"""

from __future__ import annotations

from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from provisioning.services import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_REPLAYED_HEADER,
    IdempotencyClaim,
    idempotency_fingerprint,
    idempotency_key_answer,
    idempotency_key_claim,
    idempotency_key_parse,
    idempotency_key_release,
    idempotency_scope,
)


class _Replay(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def replayed(row) -> HttpResponse:
    response = HttpResponse(row.body, status=row.status_code, content_type=row.content_type or None)
    response[IDEMPOTENCY_REPLAYED_HEADER] = "true"
    return response


class IdempotentPosts:
    """A viewset mixin: every POST accepts an Idempotency-Key."""

    _idempotency: IdempotencyClaim | None = None
    _idempotency_request: tuple[str, str] | None = None

    def initial(self, request: Request, *args, **kwargs) -> None:
        self._idempotency = self._idempotency_request = None
        raw = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
        if raw is not None:
            django_request = request._request
            fingerprint = idempotency_fingerprint(
                django_request.method,
                django_request.get_full_path(),
                (request.content_type or "").split(";")[0].strip().lower(),
                django_request.body,  # read now: DRF parses from the bytes read
            )
            self._idempotency_request = (raw, fingerprint)
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request: Request) -> None:
        if self._idempotency_request is not None:
            raw, fingerprint = self._idempotency_request
            key = idempotency_key_parse(raw)
            claim = idempotency_key_claim(
                scope=idempotency_scope(request.user), key=key, fingerprint=fingerprint
            )
            if claim.replay is not None:
                raise _Replay(replayed(claim.replay))
            self._idempotency = claim
        super().check_throttles(request)

    def handle_exception(self, exc: Exception):
        if isinstance(exc, _Replay):
            return exc.response
        try:
            return super().handle_exception(exc)
        except BaseException:
            claim, self._idempotency = self._idempotency, None
            if claim is not None:
                idempotency_key_release(claim=claim)
            raise

    def finalize_response(self, request: Request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        claim, self._idempotency = self._idempotency, None
        if claim is not None:
            if isinstance(response, Response) and not response.is_rendered:
                response.render()
            idempotency_key_answer(
                claim=claim,
                status_code=response.status_code,
                content_type=response.get("Content-Type", ""),
                body=response.content.decode("utf-8", errors="replace"),
            )
        return response
