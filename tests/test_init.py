"""Tests for the package's public surface."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import vexora_async
import vexora_async.ledgers
import vexora_async.notifications


PACKAGE = Path(vexora_async.__file__).parent
#: The public modules whose names docs/api.md documents.
NAMESPACES = [vexora_async, vexora_async.ledgers, vexora_async.notifications]


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


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(namespace: object) -> None:
    """__all__ is kept sorted, so merges and reviews stay easy."""
    names = namespace.__all__  # type: ignore[attr-defined]
    assert names == sorted(set(names))


@pytest.mark.parametrize(
    ("namespace", "name"),
    [(m, name) for m in NAMESPACES[1:] for name in m.__all__],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_every_name_of_a_subpackage_is_importable(namespace: object, name: str) -> None:
    """``from vexora_async.ledgers import X`` works for all of its __all__."""
    assert getattr(namespace, name) is not None


def test_callbacks_are_the_same_objects_at_the_top_level() -> None:
    """``vexora_async.X`` and ``vexora_async.notifications.X`` are one name."""
    for name in vexora_async.notifications.__all__:
        assert getattr(vexora_async, name) is getattr(vexora_async.notifications, name)
        assert name in vexora_async.__all__


@pytest.mark.parametrize("name", ["Claim", "EntryState", "LedgerEntry"])
def test_ledger_plumbing_moved_to_the_ledgers_package(name: str) -> None:
    """The old top-level name still works, with a warning that says where to go."""
    assert name not in vexora_async.__all__
    with pytest.warns(
        DeprecationWarning, match=f"import {name} from vexora_async.ledgers"
    ):
        moved = getattr(vexora_async, name)
    assert moved is getattr(vexora_async.ledgers, name)


@pytest.mark.parametrize("name", ["LAZY", "load"])
def test_lazy_import_plumbing_is_not_public(name: str) -> None:
    """The loader of the optional extras is no name of the top level."""
    with pytest.raises(AttributeError):
        getattr(vexora_async, name)


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


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_api_reference(namespace: object) -> None:
    """docs/api.md lists every exported name, so the reference is complete."""
    api = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. \w+:: (\w+)$", api, flags=re.MULTILINE))
    assert set(namespace.__all__) <= documented  # type: ignore[attr-defined]


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


def test_a_missing_redis_names_the_extra_for_the_callback_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Redis notification store is lazy too, in its own package."""
    monkeypatch.setitem(sys.modules, "vexora_async.notifications._redis", None)

    with pytest.raises(ImportError, match=r"vexora-async\[redis\]"):
        _ = vexora_async.notifications.RedisNotificationStore
    with pytest.raises(ImportError, match=r"vexora-async\[redis\]"):
        _ = vexora_async.RedisNotificationStore
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = vexora_async.notifications.NoSuchThing


def _imports(path: Path) -> set[str]:
    """Return the vexora_async modules *path* imports, type-checking ones too."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            name = node.module or ""
            if node.level:
                name = f"{base}.{name}" if name else base
            found.add(name)
            # "from . import ledgers" imports a module, not a name.
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "vexora_async"}


def _import_graph() -> dict[str, set[str]]:
    modules = {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): path
        for path in PACKAGE.rglob("*.py")
    }
    return {
        name: {target for target in _imports(path) if target in modules}
        for name, path in modules.items()
    }


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_the_postgres_ledger_and_the_client_do_not_import_each_other() -> None:
    """No import chain, type-checking imports included, leads back to _postgres.

    ``_client -> ledgers -> _postgres -> _client`` was such a circle: the
    ledger reached into the client's private parts. It now asks the client
    through public methods only.
    """
    graph = _import_graph()
    postgres = "vexora_async.ledgers._postgres"

    assert "vexora_async._client" not in _reachable(graph, postgres)
    assert postgres not in _reachable(graph, postgres)
