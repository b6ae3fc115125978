"""Tests for the package's public surface."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import vexora_async
import vexora_async.ledgers


CONTRACT = [
    "VexoraClient",
    "PayoutRequest",
    "DepositRequest",
    "BankCode",
    "sign",
    "new_trade_no",
    "VexoraError",
    "GatewayError",
    "PayoutOutcomeUnknown",
    "__version__",
]


def test_all_is_sorted_and_unique() -> None:
    """__all__ is kept sorted, so merges and reviews stay easy."""
    assert vexora_async.__all__ == sorted(set(vexora_async.__all__))


@pytest.mark.parametrize("name", vexora_async.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    """``from vexora_async import X`` works for everything in __all__."""
    module = importlib.import_module("vexora_async")
    assert getattr(module, name) is not None


@pytest.mark.parametrize("name", CONTRACT)
def test_public_api_contract_names_exist(name: str) -> None:
    """The names other issues and users' code rely on are exported."""
    assert name in vexora_async.__all__
    assert hasattr(vexora_async, name)


def test_version_is_a_release_string() -> None:
    """__version__ is a PEP 440-looking release such as 0.1.0."""
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z]+\d+)?", vexora_async.__version__)


def test_client_constructor_matches_the_contract() -> None:
    """VexoraClient takes the contract's arguments, options keyword-only."""
    params = inspect.signature(vexora_async.VexoraClient).parameters
    assert list(params)[:3] == ["merchant_no", "app_secret", "base_url"]
    for option in ("http_client", "timeout", "max_retries"):
        assert params[option].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    "method",
    ["create_payout", "get_payout", "get_balance", "create_deposit", "get_deposit"],
)
def test_client_has_the_five_calls(method: str) -> None:
    """The five gateway calls are coroutine methods of the client."""
    assert inspect.iscoroutinefunction(getattr(vexora_async.VexoraClient, method))


def test_public_names_have_docstrings() -> None:
    """Everything exported is documented (the API reference is built from it)."""
    for name in vexora_async.__all__:
        obj = getattr(vexora_async, name)
        if callable(obj):
            assert obj.__doc__, name


def test_every_public_name_is_in_the_api_reference() -> None:
    """docs/api.md lists every exported name, so the reference is complete."""
    api = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. \w+:: (\w+)$", api, flags=re.MULTILINE))
    assert set(vexora_async.__all__) <= documented


@pytest.mark.subprocess
def test_importing_the_package_imports_no_optional_engine() -> None:
    """``import vexora_async`` imports neither redis nor psycopg; use does."""
    code = (
        "import sys, vexora_async\n"
        "assert not {'redis', 'psycopg', 'psycopg_pool'} & set(sys.modules)\n"
        "assert vexora_async.RedisLedger.__name__ == 'RedisLedger'\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our code


def test_a_missing_extra_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the driver, the lazy name says which extra brings it."""
    monkeypatch.setitem(sys.modules, "vexora_async.ledgers._postgres", None)

    with pytest.raises(ImportError, match=r"vexora-async\[postgres\]"):
        _ = vexora_async.PostgresLedger
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = vexora_async.NoSuchThing
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = vexora_async.ledgers.NoSuchThing
