"""Without the otel and prometheus extras, the package imports and works.

Each check runs in a fresh interpreter whose imports of ``opentelemetry``
and ``prometheus_client`` are refused, as if they were not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


# Each test runs Python in a subprocess: left out of the fast tier.
pytestmark = pytest.mark.subprocess

BLOCK = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("opentelemetry", "prometheus_client"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    """Run *code* after the import blocker, in a fresh interpreter."""
    return subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_imports_and_pays_out_without_them() -> None:
    """Import vexora_async, make a payout with a hook: nothing reaches for them."""
    done = run(
        """
        import asyncio
        import json

        import httpx
        import vexora_async
        from vexora_async import BankCode, PayoutRequest, VexoraClient

        def answer(request):
            trade_no = json.loads(request.content)["tradeNo"]
            data = {"tradeNo": trade_no, "status": "0015"}
            body = {"code": "0000", "msg": "ok", "success": True, "data": data}
            return httpx.Response(200, json=body)

        async def main():
            seen = []
            http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
            async with http, VexoraClient(
                "1000000001", "secret", "http://127.0.0.1:9",
                http_client=http, on_event=seen.append,
            ) as client:
                result = await client.create_payout(PayoutRequest(
                    trade_no="VX1", amount=100, bank_code=BankCode.KBZPAY,
                    bank_number="09791234567", name="Ko Min Thu",
                    notify_url="http://127.0.0.1:8091/notify",
                ))
            assert result.trade_no == "VX1"
            assert len(seen) == 4

        asyncio.run(main())
        loaded = [m for m in sys.modules if m.split(".")[0] in (
            "opentelemetry", "prometheus_client")]
        assert not loaded, loaded
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("module", "extra"),
    [("vexora_async.otel", "otel"), ("vexora_async.prometheus", "prometheus")],
)
def test_the_adapters_say_which_extra_to_install(module: str, extra: str) -> None:
    """Importing an adapter without its package names the extra."""
    done = run(
        f"""
        try:
            import {module}
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert f"vexora-async[{extra}]" in done.stdout


def test_importing_the_package_loads_neither() -> None:
    """With both installed, ``import vexora_async`` still imports neither."""
    code = (
        "import sys, vexora_async, vexora_async.events; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'opentelemetry', 'prometheus_client'}))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
