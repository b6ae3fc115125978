"""The wire's JSON: orjson when installed, the standard library otherwise.

Both give the same results, byte for byte on the way out (a flat object of
strings, compact, UTF-8, nothing escaped but what JSON requires) and value
for value on the way in (numbers with a fraction become ``Decimal``, never
float). orjson (the ``orjson`` extra) takes about a quarter off the SDK's
own CPU per call; see the performance guide. Any answer orjson cannot
parse exactly (a fraction, an integer beyond 64 bits, ``NaN``, deep
nesting) is parsed again by the standard library, which decides.
"""

from __future__ import annotations

import importlib
import json
from decimal import Decimal
from typing import Any


orjson: Any
try:
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - the extra is installed in our tests
    orjson = None


def dumps(fields: dict[str, str]) -> bytes:
    """Encode a request body: compact, UTF-8, as ``json.dumps`` would."""
    if orjson is not None:
        encoded: bytes = orjson.dumps(fields)
        return encoded
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    """Decode an answer; fractions become ``Decimal``.

    Raises ``ValueError`` (bad JSON, bad UTF-8) or ``RecursionError`` as
    ``json.loads`` does.
    """
    if orjson is not None:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the standard library parses it, or says why not
        else:
            if not _has_float(value):
                return value
    return json.loads(body, parse_float=Decimal)


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False
