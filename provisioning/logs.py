"""Structured log lines: every line about an operation carries its id, and no line carries a secret.

The runner sets the context (`log_context(operation=..., step=..., attempt=...)`) around each step;
`ContextFilter` copies it onto every record logged meanwhile, whoever logs it (a step, a provider,
Celery's own task lines). The formatters write one JSON object (`LOG_FORMAT=json`) or one `key=value`
line (`LOG_FORMAT=text`) per record, and mask credentials in URLs, API tokens and the service's own
secrets in the message and the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache

CONTEXT_FIELDS = ("operation", "kind", "step", "attempt")

_context: ContextVar[dict[str, str] | None] = ContextVar("provisioning_log_context", default=None)


@contextmanager
def log_context(**fields) -> Iterator[None]:
    """Add fields to every log line written inside the block (nested blocks add to the outer ones)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def bind(**fields) -> object:
    """Like `log_context`, for callers that cannot use a `with` block (Celery's prerun/postrun)."""
    return _context.set({**(_context.get() or {}), **{k: str(v) for k, v in fields.items() if v is not None}})


def unbind(token: object) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# --- Secrets -------------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"\b(?P<head>Token|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_SECRET_SETTINGS = ("SECRET_KEY", "METRICS_TOKEN", "ORDERS_VAULT_KEY", "BOOKINGS_VERIFICATION_SECRET")


@cache
def _secret_values() -> tuple[str, ...]:
    from django.conf import settings

    values = [str(getattr(settings, name, "") or os.environ.get(name, "")) for name in _SECRET_SETTINGS]
    values += [str(db.get("PASSWORD") or "") for db in settings.DATABASES.values()]
    return tuple(v for v in values if len(v) >= 6)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _AUTH_HEADER.sub(r"\g<head> ***", text)
    try:
        secrets = _secret_values()
    except Exception:  # settings not configured yet (a line logged while Django starts)
        secrets = ()
    for value in secrets:
        text = text.replace(value, "***")
    return text


# --- Formatters ----------------------------------------------------------------------------------


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, str]:
    fields = {
        "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "msg": redact(record.getMessage()),
    }
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = str(value)
    if record.exc_info:
        fields["exc"] = redact(formatter.formatException(record.exc_info))
    elif record.exc_text:
        fields["exc"] = redact(record.exc_text)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the operation context, exc."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=INFO logger=provisioning.saga operation=... msg="..."`, for people reading a tail."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record, self)
        parts = []
        for key, value in fields.items():
            if key == "exc":
                continue
            if not value or any(c in value for c in ' "='):
                value = json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={value}")
        line = " ".join(parts)
        return f"{line}\n{fields['exc']}" if "exc" in fields else line
