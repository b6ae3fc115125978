"""``python -m vexora_async``: the command line (see :mod:`vexora_async._cli`)."""

from __future__ import annotations

import sys

from ._cli import main


sys.exit(main(prog="python -m vexora_async"))
