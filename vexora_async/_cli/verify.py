"""``python -m vexora_async verify FILE``: check a saved callback body.

For the engineer whose receiver says "invalid signature": it prints the
canonical string that is signed, the sign the secret gives, the sign
received, and the verdict the receiver would reach. The secret comes from
an environment variable, never from an argument (arguments end up in shell
history and process lists).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vexora_async._secret import Secret, secret_problem
from vexora_async._signer import SIGN_FIELD
from vexora_async.exceptions import NotificationError
from vexora_async.notifications._parse import (
    DEFAULT_MAX_BYTES,
    decode_fields,
    describe,
    parse_notification,
)

from ._command import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Command


if TYPE_CHECKING:
    import argparse


SECRET_ENV = "VEXORA_APP_SECRET"  # noqa: S105 - the name of a variable, not a secret


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        help="the callback body exactly as received (raw bytes); '-' for stdin",
    )
    parser.add_argument(
        "--secret-env",
        default=SECRET_ENV,
        metavar="NAME",
        help="the environment variable that holds the app secret "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--kind",
        choices=["payout", "deposit"],
        help="the kind of notification expected (default: guessed)",
    )


def _read(name: str) -> bytes:
    # One byte over the cap is enough to tell that it is too large.
    if name == "-":
        return sys.stdin.buffer.read(DEFAULT_MAX_BYTES + 1)
    with Path(name).open("rb") as file:
        return file.read(DEFAULT_MAX_BYTES + 1)


def _left_out(body: bytes) -> list[str]:
    fields = decode_fields(body)
    skipped = []
    for key, value in fields.items():
        if key == SIGN_FIELD:
            continue
        if value is None or value == "":
            skipped.append(f"{key} (empty)")
        elif isinstance(value, (dict, list)):
            skipped.append(
                f"{key} ({'object' if isinstance(value, dict) else 'array'})"
            )
    return skipped


def _print(label: str, value: str) -> None:
    print(f"{label + ':' if label else '':<18}{value}")


def run(args: argparse.Namespace) -> int:
    """Verify the saved body; print what was signed and the verdict."""
    # Name only the default: whoever typed the secret itself after
    # --secret-env must not see it echoed into a log or a screenshot.
    name = SECRET_ENV if args.secret_env == SECRET_ENV else "the --secret-env variable"
    # Wrapped as it is read: no frame of ours holds it as a plain str.
    secret = Secret(os.environ.get(args.secret_env, ""))
    if not secret.value:
        print(
            f"error: set {name} to the app secret (it is never taken as an argument)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    problem = secret_problem(secret.value)
    if problem is not None:
        # Bytes the environment could not decode (not UTF-8) cannot sign.
        print(
            f"error: {name} does not hold a usable app secret: it {problem}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        body = _read(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        canonical, expected, received = describe(body, secret)
        left_out = _left_out(body)
    except NotificationError as exc:
        _print("verdict", f"REFUSED ({type(exc).__name__}): {exc.message}")
        return EXIT_REFUSED
    # Quoted, so that stray spaces and control characters show.
    _print("canonical string", json.dumps(canonical, ensure_ascii=False))
    _print("", "(the app secret is appended to it before MD5; not shown)")
    if left_out:
        _print("not signed", ", ".join(left_out))
    _print("expected sign", expected)
    _print("received sign", "(none)" if received is None else json.dumps(received))
    try:
        notification = parse_notification(body, secret, kind=args.kind)
    except NotificationError as exc:
        _print("verdict", f"REFUSED ({type(exc).__name__}): {exc.message}")
        return EXIT_REFUSED
    status = notification.status
    _print(
        "verdict",
        f"VALID {notification.kind} tradeNo={notification.trade_no} "
        f"status={status} ({status.kind.value}) amount={notification.amount}",
    )
    return EXIT_OK


command = Command(
    name="verify",
    help="check a saved callback body against the app secret",
    configure=_configure,
    run=run,
)
