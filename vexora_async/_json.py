"""The wire's JSON: orjson when installed, the standard library otherwise.

Both give the same results, byte for byte on the way out (a flat object of
strings, compact, UTF-8, nothing escaped but what JSON requires) and value
for value on the way in (numbers with a fraction become ``Decimal``, never
float). orjson (the ``orjson`` extra) takes about a quarter off the SDK's
own CPU per call; see the performance guide. Any answer orjson cannot
parse exactly (a fraction, an integer beyond 64 bits, ``NaN``, deep
nesting) is parsed again by the standard library, which decides.

A key that appears twice in one object is refused (``ValueError``): it
leaves two readings of one answer (does the first or the last win?), and
"accepted" read last-wins over "rejected" is a payout reported wrongly.
orjson keeps the last silently, so its result is used only when the body
has exactly as many ``"key":`` tokens as orjson found keys.
"""

from __future__ import annotations

import importlib
import json
import re
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


def dumps_sorted(fields: dict[str, str]) -> bytes:
    """Encode *fields* with sorted keys, as ``json.dumps(sort_keys=True)`` would.

    The fingerprint of a payout is the hash of these bytes, stored in
    shared ledgers: both paths give the same bytes (tested), so entries
    written with and without orjson match.
    """
    if orjson is not None:
        try:
            encoded: bytes = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass  # a lone surrogate: the standard library says why
        else:
            return encoded
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode()


# Every key is a string followed by a colon; so is nothing else outside a
# string. Inside one, `\":` can match too, which only sends us to the
# standard library.
_KEY_TOKEN = re.compile(rb'"[ \t\r\n]*:')


def loads(body: bytes) -> Any:
    """Decode an answer; fractions become ``Decimal``; duplicate keys refused.

    Raises ``ValueError`` (bad JSON, bad UTF-8, a duplicated key) or
    ``RecursionError`` as ``json.loads`` does.
    """
    if orjson is not None:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the standard library parses it, or says why not
        else:
            keys = _plain_keys(value)
            if keys is not None and keys == _key_tokens(body):
                return value
    return json.loads(body, parse_float=Decimal, object_pairs_hook=unique_object)


def _key_tokens(body: bytes) -> int:
    """Count ``"key":`` tokens (at least as many as there are keys)."""
    if b'" ' in body or b'"\t' in body or b'"\n' in body or b'"\r' in body:
        return len(_KEY_TOKEN.findall(body))  # spaced: the general pattern
    # Compact JSON, the gateway's: a C-speed count of the same tokens.
    return body.count(b'":')


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key that appears twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        msg = "duplicated key"
        raise ValueError(msg)
    return obj


def _plain_keys(value: object) -> int | None:
    """Count the keys in *value*; None when it holds a float (not exact).

    Exact types, no recursion: orjson makes only these, and this runs on
    every answer.
    """
    count = 0
    pending = [value]
    while pending:
        node = pending.pop()
        items: Any
        if type(node) is dict:
            count += len(node)
            items = node.values()
        elif type(node) is list:
            items = node
        elif type(node) is float:
            return None
        else:
            continue
        for item in items:
            kind = type(item)
            if kind is dict or kind is list:
                pending.append(item)
            elif kind is float:
                return None
    return count
