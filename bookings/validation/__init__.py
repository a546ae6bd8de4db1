"""Validation of booking-item resources, hosting-asset config and domain names.

Each validator returns every problem at once as `{field: [message, ...]}`, so that the API can answer
400 naming every bad field, and the saga can say exactly what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Errors = dict[str, list[str]]


@dataclass(frozen=True)
class Prop:
    """One key of a JSON object (resources, config) with its type and range."""

    name: str
    kind: type | tuple[type, ...] = int
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    max_length: int | None = None
    item_pattern: str | None = None  # for lists of strings
    default: Any = None
    help: str = ""  # said in the error when the pattern does not match

    def check(self, value: Any) -> list[str]:
        if self.kind is bool:
            return [] if isinstance(value, bool) else ["must be true or false."]
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return ["must be a whole number."]
            if self.minimum is not None and value < self.minimum:
                return [f"must be at least {self.minimum}."]
            if self.maximum is not None and value > self.maximum:
                return [f"must be at most {self.maximum}."]
            return []
        if self.kind is str:
            if not isinstance(value, str):
                return ["must be a string."]
            if self.choices and value not in self.choices:
                return [f"must be one of {', '.join(self.choices)}."]
            if self.max_length is not None and len(value) > self.max_length:
                return [f"must be at most {self.max_length} characters long."]
            if self.pattern and not re.fullmatch(self.pattern, value):
                return [self.help or f"must match {self.pattern}."]
            return []
        if self.kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return ["must be a list of strings."]
            if self.maximum is not None and len(value) > self.maximum:
                return [f"must have at most {self.maximum} entries."]
            if self.item_pattern:
                bad = [v for v in value if not re.fullmatch(self.item_pattern, v)]
                if bad:
                    return [f"{', '.join(map(repr, bad[:5]))}: {self.help or 'not allowed here.'}"]
            return []
        return [] if isinstance(value, self.kind) else ["has the wrong type."]


@dataclass(frozen=True)
class Schema:
    props: tuple[Prop, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.props]

    def validate(self, data: Any) -> Errors:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return {"non_field_errors": ["must be a JSON object."]}
        errors: Errors = {}
        known = {p.name: p for p in self.props}
        for key in data:
            if key not in known:
                allowed = ", ".join(self.names) or "none"
                errors[str(key)] = [f"is not a known property here (allowed: {allowed})."]
        for prop in self.props:
            if prop.name not in data or data[prop.name] is None:
                if prop.required:
                    errors[prop.name] = ["is required."]
                continue
            problems = prop.check(data[prop.name])
            if problems:
                errors[prop.name] = problems
        return errors

    def with_defaults(self, data: dict) -> dict:
        result = dict(data or {})
        for prop in self.props:
            if prop.name not in result and prop.default is not None:
                result[prop.name] = prop.default
        return result


def merge(into: Errors, prefix: str, errors: Errors) -> Errors:
    """Nest `errors` under `prefix` (`{"resources": {"CPU": [...]}}`)."""
    if errors:
        into[prefix] = errors  # type: ignore[assignment]
    return into


def flatten(errors: dict, prefix: str = "") -> dict[str, list[str]]:
    """`{"resources": {"CPU": [...]}}` → `{"resources.CPU": [...]}`: one flat field-error map, the shape
    Django's ValidationError (and so the API's 400) carries."""
    flat: dict[str, list[str]] = {}
    for key, value in errors.items():
        name = f"{prefix}.{key}" if prefix and key != "non_field_errors" else (prefix or str(key))
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat.setdefault(name, []).extend(value)
    return flat


def first(messages: Iterable[str]) -> str:
    return next(iter(messages), "")
