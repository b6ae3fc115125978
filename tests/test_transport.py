"""The client the SDK builds for the default transport: a stock httpx client.

What it promises is checked through what a user sees on a real loopback
server: one kept-alive connection for consecutive calls, TLS verified
against the trust store ``SSL_CERT_FILE`` names (one context per process),
no redirect followed, and at most ``max_connections`` sockets.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import ssl
import subprocess
import warnings
from typing import TYPE_CHECKING

import httpx
import pytest
from vexora_async import ConnectError, PayoutOutcomeUnknown, RetryPolicy, VexoraClient
from vexora_async._transports import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    HttpxPort,
    make_http_client,
)

from tests.helpers import MERCHANT_NO, SECRET, make_payout
from tests.loopback_gateway import loopback_gateway


if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        subprocess.run(  # noqa: S603 - a fixed command line
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    try:
        cryptography_certificate(cert, key)
    except ImportError:
        pytest.skip("needs the openssl command or the cryptography package")
    return cert, key


def cryptography_certificate(cert: Path, key: Path) -> None:
    """Write a self-signed certificate with the cryptography package."""
    import datetime as dt
    import ipaddress

    from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found, unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found, unused-ignore]
        ec,
    )
    from cryptography.x509.oid import (  # type: ignore[import-not-found, unused-ignore]
        NameOID,
    )

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The loopback server's TLS context."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


async def test_the_sdk_builds_a_stock_client_with_its_settings() -> None:
    """Public settings only: timeouts, headers, no redirects, the environment."""
    client = make_http_client(
        timeout=DEFAULT_TIMEOUT,
        max_connections=7,
        headers={"User-Agent": "vexora-test"},
    )
    async with client:
        assert type(client) is httpx.AsyncClient
        assert client.timeout == DEFAULT_TIMEOUT
        assert client.headers["User-Agent"] == "vexora-test"
        assert client.follow_redirects is False
        assert client.trust_env is True


async def test_consecutive_payouts_share_one_kept_alive_connection() -> None:
    """Three payouts in a row go over one connection, kept open between them."""
    async with (
        loopback_gateway() as gateway,
        VexoraClient(MERCHANT_NO, SECRET, gateway.base_url) as client,
    ):
        assert isinstance(client._port, HttpxPort)
        for i in range(3):
            await client.create_payout(make_payout(trade_no=f"VXKEEP{i}"))
        assert gateway.open_connections == 1
    assert gateway.max_open_connections == 1
    assert len(gateway.requests) == 3


async def test_default_concurrency_stays_within_the_default_pool() -> None:
    """200 payouts at once on default settings: at most 20 sockets."""
    async with (
        loopback_gateway() as gateway,
        VexoraClient(MERCHANT_NO, SECRET, gateway.base_url) as client,
    ):
        await asyncio.gather(
            *(
                client.create_payout(make_payout(trade_no=f"VXPOOL{i:04d}"))
                for i in range(200)
            )
        )
    assert DEFAULT_MAX_CONNECTIONS == 20
    assert gateway.max_open_connections <= DEFAULT_MAX_CONNECTIONS


async def test_https_trusts_what_ssl_cert_file_names(
    server_tls: ssl.SSLContext,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS verifies against SSL_CERT_FILE, read when the client is made."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with (
        loopback_gateway(server_tls) as gateway,
        VexoraClient(MERCHANT_NO, SECRET, gateway.base_url) as client,
    ):
        for i in range(3):
            result = await client.create_payout(make_payout(trade_no=f"VXTLS{i}"))
            assert result.trade_no == f"VXTLS{i}"
    assert gateway.max_open_connections == 1


async def test_https_refuses_a_certificate_nobody_trusts(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untrusted certificate fails the connect: never sent, no payout."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    policy = RetryPolicy(max_retries=0, deadline=5)
    async with (
        loopback_gateway(server_tls) as gateway,
        VexoraClient(MERCHANT_NO, SECRET, gateway.base_url, retry=policy) as client,
    ):
        with pytest.raises(ConnectError) as info:
            await client.create_payout(make_payout())
    assert info.value.may_have_executed is False
    assert gateway.requests == []


async def test_a_redirect_is_not_followed() -> None:
    """A 302 from the gateway's address is not replayed elsewhere: unknown."""

    async def redirect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(redirect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy = RetryPolicy(max_retries=0, reconcile=False, deadline=5)
    async with (
        server,
        VexoraClient(
            MERCHANT_NO, SECRET, f"http://127.0.0.1:{port}/myanmar", retry=policy
        ) as client,
    ):
        with pytest.raises(PayoutOutcomeUnknown) as info:
            await client.create_payout(make_payout())
    assert "302" in str(info.value)


async def test_closing_the_client_while_connections_open_leaves_none_open() -> None:
    """aclose() as payouts are connecting: every socket closed, none to the GC.

    httpcore's pool, closed while a connection is being opened, forgets it;
    the payout goes on over it and nothing closes it afterwards.
    """
    policy = RetryPolicy(max_retries=0, reconcile=False, deadline=5)
    async with loopback_gateway() as gateway:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for passes in range(12):
                client = VexoraClient(
                    MERCHANT_NO, SECRET, gateway.base_url, retry=policy
                )
                calls = [
                    asyncio.create_task(
                        client.create_payout(make_payout(trade_no=f"VXCL{passes}X{i}"))
                    )
                    for i in range(20)
                ]
                for _ in range(passes):
                    await asyncio.sleep(0)
                await client.aclose()
                await asyncio.gather(*calls, return_exceptions=True)
            await asyncio.wait_for(
                gateway.until(lambda: gateway.open_connections == 0), 10
            )
            gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
