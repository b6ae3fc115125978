"""Sphinx configuration for the vexora-async docs."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import attrs
from sphinx.util.inspect import object_description
from vexora_async import __version__


if TYPE_CHECKING:
    from sphinx.application import Sphinx


project = "vexora-async"
author = "vexora-async developers"
copyright = "2026, vexora-async developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# performance/ holds the benchmark's output, shown by performance.md.
exclude_patterns = ["_build", "performance/*.md.in", "performance/**"]
# The examples' own READMEs are read on GitHub, beside their code, not pages.
exclude_patterns += ["examples/**"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = False

html_theme = "furo"
html_title = f"vexora-async {release}"
# Myanmar script falls back to the reader's installed Myanmar fonts (Noto
# Sans Myanmar, Padauk, Myanmar Text...) instead of empty boxes; no webfont,
# the docs build and read offline.
html_static_path = ["_static"]
html_css_files = ["myanmar-fonts.css"]
# Diagrams are drawn at build time by Graphviz, as SVG (no browser-side
# JavaScript, no CDN: the docs build offline).
graphviz_output_format = "svg"


# -- signatures show real defaults ---------------------------------------------
# autodoc prints a default with repr(): attrs' factories come out as NOTHING,
# the client's "unset" timeout as <object object>, functions as <function
# ...>, long constants in full. Show what a reader can use instead.


def _shown(name: str, default: object) -> str | None:
    """Return how parameter *name*'s *default* should read, or None to keep it."""
    import vexora_async._options
    import vexora_async._transports
    import vexora_async.testing

    if default is vexora_async._options.UNSET:  # noqa: SLF001 - its sentinel
        if name == "max_connections":
            # 20, or 100 with transport="aiohttp": the parameter says so.
            return "<the transport's>"
        # The SDK's own timeout; an injected httpx client keeps its own.
        return repr(vexora_async._transports.DEFAULT_TIMEOUT)  # noqa: SLF001
    for namespace in (vexora_async, vexora_async.testing):
        for public in namespace.__all__:
            value = getattr(namespace, public)
            if value is default and isinstance(value, tuple):
                return f"{namespace.__name__}.{public}"
    if inspect.isroutine(default):
        # random.random is a method of a Random instance: its module is its type's.
        owner = type(getattr(default, "__self__", None))
        module = getattr(default, "__module__", None) or owner.__module__
        public = bool(module) and not module.startswith("vexora_async")
        return f"{module}.{default.__name__}" if public else default.__name__
    return None


def _attrs_defaults(cls: type) -> dict[str, str]:
    if not attrs.has(cls):
        return {}
    shown = {}
    for field in attrs.fields(cls):
        default = field.default
        if isinstance(default, attrs.Factory) and not default.takes_self:  # type: ignore[arg-type]
            shown[field.alias or field.name] = repr(default.factory())
    return shown


def _real_defaults(  # noqa: PLR0917 - the event's signature
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    del app, name, options
    if not signature or what not in {"class", "exception", "method", "function"}:
        return None
    try:
        parameters = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    factories = _attrs_defaults(obj) if isinstance(obj, type) else {}
    for parameter in parameters:
        if parameter.default is inspect.Parameter.empty:
            continue
        shown = factories.get(parameter.name) or _shown(
            parameter.name, parameter.default
        )
        if shown is not None:
            before = f"{parameter.name}={object_description(parameter.default)}"
            signature = signature.replace(before, f"{parameter.name}={shown}")
    return signature, return_annotation


def setup(app: Sphinx) -> None:
    """Register the signature fixer."""
    app.connect("autodoc-process-signature", _real_defaults)
