"""Tests for ``vexora demo``'s command line."""

from __future__ import annotations

import pytest
from vexora_async._cli import main


def test_demo_help_explains_the_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    """``demo --help`` documents count, concurrency, fault rate and seed."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for knob in ("--count", "--concurrency", "--fault-rate", "--seed", "1000"):
        assert knob in out
