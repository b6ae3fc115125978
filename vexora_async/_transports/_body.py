"""Read an answer's body, never more than a cap, counted after decompression.

A gateway answer is a few hundred bytes. A hostile or broken peer can send
200 MB, an endless stream, or a 2 KB gzip bomb that inflates to gigabytes
in one ``zlib.decompress`` call (which is how httpx decodes). So the SDK
reads the raw bytes itself and inflates them with ``max_length``: memory
stays within a few chunks of the cap whatever arrives, and reading stops
as soon as the cap is passed.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, NamedTuple


if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable


#: The default cap. A gateway answer is under 2 KB; this is generous.
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
#: What we ask for: both are inflated with a bound below. httpx would also
#: offer brotli and zstd when those packages are installed.
ACCEPT_ENCODING = "gzip, deflate"


class Body(NamedTuple):
    """What was read: the bytes, or why they cannot be used."""

    content: bytes
    #: ``None`` when *content* is the whole answer.
    problem: str | None = None


def _inflater(encoding: str) -> Callable[[bytes, int], bytes] | None:
    """Return a bounded decoder for *encoding*, or None if unsupported."""
    if encoding in {"", "identity"}:
        return lambda data, _limit: data
    if encoding in {"gzip", "x-gzip"}:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        # RFC 9110's deflate is zlib-wrapped; some servers send it raw. The
        # first bytes tell which, as httpx's decoder decides too.
        return _Deflate().decode
    else:
        return None
    return inflater.decompress


class _Deflate:
    def __init__(self) -> None:
        self._inflater: zlib._Decompress | None = None

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._inflater is None:
            try:
                self._inflater = zlib.decompressobj()
                return self._inflater.decompress(data, limit)
            except zlib.error:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inflater.decompress(data, limit)


async def read_capped(
    raw: AsyncIterable[bytes], content_encoding: str, cap: int
) -> Body:
    """Read *raw* (the undecoded body) and inflate it, at most *cap* bytes.

    Stops reading the moment the cap is passed. A ``Content-Encoding`` we
    did not ask for, or data that does not inflate, is a problem, not an
    exception: what a broken answer means is for the money rules to say.
    """
    decode = _inflater(content_encoding.strip().lower())
    if decode is None:
        return Body(b"", f"the answer's Content-Encoding {content_encoding!r:.40}")
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in raw:
            # max_length one past the room left: more than that is over.
            piece = decode(chunk, cap - size + 1)
            size += len(piece)
            if size > cap:
                return over_cap(cap)
            parts.append(piece)
    except zlib.error as exc:
        return Body(b"", f"the answer does not inflate ({exc})")
    return Body(b"".join(parts))


def capped(content: bytes, cap: int) -> Body:
    """Apply the cap to an answer that is already in memory, and decoded."""
    return over_cap(cap) if len(content) > cap else Body(content)


def inflate_capped(raw: bytes, content_encoding: str, cap: int) -> Body:
    """Decode *raw*, a whole undecoded body already read, at most *cap* bytes.

    For a body whose ``Content-Length`` was within the cap: read in one
    go, then inflated with the same bound as :func:`read_capped`.
    """
    if not content_encoding:
        return over_cap(cap) if len(raw) > cap else Body(raw)
    decode = _inflater(content_encoding.strip().lower())
    if decode is None:
        return Body(b"", f"the answer's Content-Encoding {content_encoding!r:.40}")
    try:
        content = decode(raw, cap + 1)
    except zlib.error as exc:
        return Body(b"", f"the answer does not inflate ({exc})")
    return over_cap(cap) if len(content) > cap else Body(content)


def over_cap(cap: int) -> Body:
    """Return what is left of an answer over *cap*: nothing usable."""
    return Body(b"", f"the answer is over the {cap}-byte cap")
