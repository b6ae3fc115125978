"""Sphinx configuration for the vexora-async docs."""

from __future__ import annotations

from vexora_async import __version__


project = "vexora-async"
author = "vexora-async developers"
copyright = "2026, vexora-async developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# performance/ holds the benchmark's output, shown by performance.md.
exclude_patterns = ["_build", "performance/*.md.in", "performance/**"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"vexora-async {release}"
