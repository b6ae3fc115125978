"""Names that need an optional extra, imported on first use."""

from __future__ import annotations

import importlib


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
