"""Masks for personal data in logs and reprs: account numbers and names."""

from __future__ import annotations

import re


_DIGIT_RUN = re.compile(r"\d{6,}")


def mask_account(value: str) -> str:
    """Keep the last four characters of an account number: ``****9012``."""
    return "****" + value[-4:] if len(value) > 4 else "****"  # noqa: PLR2004


def mask_name(value: str) -> str:
    """Keep the first character of a name: ``K***``."""
    return value[:1] + "***" if value else ""


def mask_digit_runs(text: str) -> str:
    """Mask every run of six or more digits in free text, keeping its tail."""
    return _DIGIT_RUN.sub(lambda m: mask_account(m.group()), text)
