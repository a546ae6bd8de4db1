"""Validators shared by API serializers and wizard forms (Django validators: both accept them)."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError


def single_line(value: str) -> None:
    """A name or caption is one line of printable text: a line break or another control character in
    it could split a header, a log line or a tag where it is shown later."""
    if isinstance(value, str) and any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise ValidationError("must be one line of text: no line breaks or control characters.")
