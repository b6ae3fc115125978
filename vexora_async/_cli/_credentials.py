"""Where the commands that call the gateway find the merchant's credentials.

From the environment (``VEXORA_MERCHANT_NO``, ``VEXORA_APP_SECRET``,
``VEXORA_BASE_URL``) or from a config file that only its owner can read;
never from an argument: arguments show in ``ps`` and in shell history.
The secret is held as a :class:`~vexora_async.Secret` from the moment it is
read and is never printed, not even masked.
"""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import attrs

from vexora_async import Secret


ENV_MERCHANT_NO = "VEXORA_MERCHANT_NO"
ENV_APP_SECRET = "VEXORA_APP_SECRET"  # noqa: S105 - a variable's name
ENV_BASE_URL = "VEXORA_BASE_URL"
ENV_CONFIG = "VEXORA_CONFIG"
#: The config file read when neither --config nor VEXORA_CONFIG names one.
DEFAULT_CONFIG = Path("~/.config/vexora/config.ini")
SECTION = "vexora"

CONFIG_HELP = (
    "credentials come from the environment (VEXORA_MERCHANT_NO, "
    "VEXORA_APP_SECRET, VEXORA_BASE_URL) or from a config file "
    "(--config, else $VEXORA_CONFIG, else ~/.config/vexora/config.ini) "
    "with a [vexora] section holding merchant_no, app_secret and base_url, "
    "readable by its owner only (chmod 600); never from an argument"
)


class CredentialsProblem(Exception):
    """The credentials are missing, or the config file is unsafe or unreadable."""


@attrs.frozen
class Credentials:
    """What a client needs; the secret stays wrapped."""

    merchant_no: str
    app_secret: Secret = attrs.field(repr=False)
    base_url: str


def load_credentials(config: str | None = None) -> Credentials:
    """Read the credentials: the environment first, then the config file."""
    merchant_no = os.environ.get(ENV_MERCHANT_NO) or None
    # Wrapped as it is read: no frame of ours holds it as a plain str.
    secret = Secret(os.environ.get(ENV_APP_SECRET, ""))
    base_url = os.environ.get(ENV_BASE_URL) or None
    path = _config_path(config)
    if path is not None and (
        config is not None or not (merchant_no and secret.value and base_url)
    ):
        values = _read_config(path)
        merchant_no = merchant_no or values.get("merchant_no")
        if not secret.value:
            secret = Secret(values.get("app_secret", ""))
        base_url = base_url or values.get("base_url")
    missing = [
        name
        for name, value in (
            (ENV_MERCHANT_NO, merchant_no),
            (ENV_APP_SECRET, secret.value),
            (ENV_BASE_URL, base_url),
        )
        if not value
    ]
    if missing:
        raise CredentialsProblem(f"set {', '.join(missing)}: {CONFIG_HELP}")
    assert merchant_no is not None  # noqa: S101 - checked just above
    assert base_url is not None  # noqa: S101
    return Credentials(merchant_no, secret, base_url)


def _config_path(config: str | None) -> Path | None:
    if config is not None:
        return Path(config).expanduser()
    named = os.environ.get(ENV_CONFIG)
    if named:
        return Path(named).expanduser()
    default = DEFAULT_CONFIG.expanduser()
    return default if default.exists() else None


def _read_config(path: Path) -> dict[str, str]:
    try:
        with path.open(encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                msg = (
                    f"refusing {path}: group or others may read it (mode "
                    f"{stat.S_IMODE(mode):04o}); it holds the app secret: "
                    f"chmod 600 {path}"
                )
                raise CredentialsProblem(msg)
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_file(file)
    except OSError as exc:
        msg = f"cannot read the config file {path}: {exc.strerror}"
        raise CredentialsProblem(msg) from None
    except configparser.Error:
        # The parser's message may quote a line of the file: the secret's.
        msg = f"{path} is not an INI file with a [{SECTION}] section"
        raise CredentialsProblem(msg) from None
    if not parser.has_section(SECTION):
        msg = f"{path} has no [{SECTION}] section"
        raise CredentialsProblem(msg)
    return dict(parser.items(SECTION))
