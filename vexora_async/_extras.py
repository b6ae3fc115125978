"""Names that need an optional extra, imported on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def load(name: str, module_name: str, extra: str) -> object:
    """Return *name* from *module_name*, saying which extra to install if absent."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = (
            f"{name} needs the {extra!r} extra: "
            f"python -m pip install 'vexora-async[{extra}]' ({exc})"
        )
        raise ImportError(msg) from exc
    return getattr(module, name)


def lazy_names(
    module: str, table: Mapping[str, tuple[str, str]]
) -> Callable[[str], object]:
    """Return a module ``__getattr__`` that loads *table*'s names on first use.

    *table* maps a name to its (module, extra).
    """

    def __getattr__(name: str) -> object:  # noqa: N807 - a module's hook
        if name in table:
            return load(name, *table[name])
        msg = f"module {module!r} has no attribute {name!r}"
        raise AttributeError(msg)

    return __getattr__
