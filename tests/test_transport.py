"""The client the SDK builds: its cookie store, choice of transport."""

from __future__ import annotations

import httpx
from vexora_async._transports import make_http_client


async def test_cookies_still_stored_when_set() -> None:
    """The SDK's client keeps a cookie the server sets, as httpx does."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/set":
            return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"})
        return httpx.Response(200, text=request.headers.get("cookie", ""))

    client = make_http_client(timeout=httpx.Timeout(5.0), max_connections=2)
    client._mounts = {}
    client._transport = httpx.MockTransport(handler)
    async with client:
        await client.get("http://127.0.0.1:9/plain")
        assert not client.cookies
        await client.get("http://127.0.0.1:9/set")
        assert client.cookies["session"] == "abc"
        echoed = await client.get("http://127.0.0.1:9/echo")
    assert echoed.text == "session=abc"
