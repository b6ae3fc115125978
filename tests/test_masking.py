"""Tests for the masks applied to personal data in logs and reprs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async._masking import mask_account, mask_digit_runs, mask_name


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("3560123456789012", "****9012"),
        ("09-7654321", "****4321"),
        ("12345", "****2345"),
        ("1234", "****"),
        ("1", "****"),
        ("", "****"),
    ],
)
def test_mask_account_keeps_only_the_last_four(value: str, masked: str) -> None:
    """Only the tail of a long account shows; a short one shows nothing."""
    assert mask_account(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [("Ko Min Thu", "K***"), ("ကိုမင်းသူ", "က***"), ("A", "A***"), ("", "")],
)
def test_mask_name_keeps_only_the_first_character(value: str, masked: str) -> None:
    """A name shows its first character only, Myanmar script included."""
    assert mask_name(value) == masked


def test_mask_digit_runs_in_free_text() -> None:
    """Runs of six or more digits are masked; short numbers stay readable."""
    text = "account 3560123456789012 amount 100 code 8000 phone 0997654321"
    assert mask_digit_runs(text) == (
        "account ****9012 amount 100 code 8000 phone ****4321"
    )
    assert mask_digit_runs("12345") == "12345"
    assert mask_digit_runs("123456") == "****3456"


@given(st.text(alphabet="0123456789", min_size=8), st.text(max_size=10))
def test_no_long_digit_run_survives(digits: str, around: str) -> None:
    """After masking, the full account number never appears in the text."""
    masked = mask_digit_runs(f"{around}{digits}{around}")
    assert digits not in masked
