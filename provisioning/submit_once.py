"""A form that books, builds or requests does it once, however often it is sent: each render carries
a key of its own (`form_key`, a hidden field), and the view runs its creating service through
`submit_once`, which holds that key with the API's Idempotency-Key service. A double-click, a
resubmitted POST after a timeout or a second tab with the same page all end at the first result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from provisioning.services import (
    IdempotencyKeyBusy,
    IdempotencyKeyReused,
    idempotency_fingerprint,
    idempotency_key_answer,
    idempotency_key_claim,
    idempotency_key_parse,
    idempotency_key_release,
    idempotency_scope,
)

FIELD = "form_key"
WAIT_FOR_FIRST = 10.0  # seconds a repeat waits for the first submission's answer before it says so


def form_key() -> str:
    """A new key for one render of a form."""
    return uuid.uuid4().hex


def submit_once(request: HttpRequest, create: Callable[[], HttpResponse]) -> HttpResponse:
    """`create()` once per form key: its redirect (the success) is kept and a repeat gets it again; any
    other answer frees the key. The form's data lives in the session, so the key alone is the request."""
    raw = request.POST.get(FIELD, "")
    if not raw:
        return create()  # a form rendered before keys (an open tab across a deploy): as before
    try:
        key = idempotency_key_parse(raw)
    except ValidationError:
        return create()
    scope, fingerprint = idempotency_scope(request.user), idempotency_fingerprint("FORM", request.path)
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        try:
            claim = idempotency_key_claim(scope=scope, key=key, fingerprint=fingerprint)
            break
        except IdempotencyKeyBusy:
            if time.monotonic() > deadline:
                return _already(request, 409, "This form was sent twice; the first is still being handled.")
            time.sleep(0.2)
        except IdempotencyKeyReused:
            return _already(request, 422, "This form's key belongs to another form: reload the page.")
    if claim.replay is not None:
        return redirect(claim.replay.location or "/")
    try:
        response = create()
    except BaseException:
        idempotency_key_release(claim=claim)
        raise
    location = response.get("Location", "") if 300 <= response.status_code < 400 else ""
    # Only a redirect is kept; a page with errors re-renders with a new key.
    idempotency_key_answer(
        claim=claim, status_code=response.status_code if location else 400, location=location
    )
    return response


def _already(request: HttpRequest, status: int, message: str) -> HttpResponse:
    return render(request, "already_sent.html", {"message": message}, status=status)
