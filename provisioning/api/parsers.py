"""JSON in, bounded: a body nested deeper than anybody writes by hand is refused with 400 before any
code walks it (Python's decoder would raise RecursionError, a 500, on ten thousand nested lists), and
so is text with a NUL character (`\\u0000`), which PostgreSQL stores neither in text nor in jsonb."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def depth_of(value) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    return _shape(value)[0]


def _shape(value) -> tuple[int, bool]:
    """How deeply `value` nests, and whether a key or a string in it holds a NUL character."""
    deepest, nul, todo = 0, False, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            nul = nul or any(isinstance(k, str) and "\x00" in k for k in item)
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
        else:
            nul = nul or (isinstance(item, str) and "\x00" in item)
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            break
    return deepest, nul


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            depth, nul = MAX_DEPTH + 1, False
        else:
            depth, nul = _shape(data)
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON parse error - lists and objects nest deeper than {MAX_DEPTH} levels.")
        if nul:
            raise ParseError("JSON parse error - text may not contain NUL characters (\\u0000).")
        return data
