"""What one setting's value may be: durations, bounded numbers, booleans, host names, tokens.

Each check raises ConfigError with the reason; the key is the caller's (a
schedule table names it) or, left empty, the settings model's, which knows
where in the file the value sat. A value read from a BENCHD_* variable is
text (FromEnvironment) that may stand for a number, a boolean or a list; in
a config file the same text is a string where a number belongs, and refused.
"""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path
from typing import Any

MAX_DURATION_SECONDS = 365 * 24 * 3600.0  # a year: past it, a timer overflows on some platforms
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_HOST_NAME = re.compile(r"\.?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?", re.ASCII)


class FromEnvironment(str):
    """A value read from a BENCHD_* variable: text that may stand for a number, a boolean or a list."""


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or out of range; names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config {key}: {reason}")
        self.key = key
        self.reason = reason


def shown(value: Any) -> str:
    """A value as an error message quotes it: never thousands of characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_float(value: Any) -> float:
    """A number as a float; one too large for a float is infinity (refused as not finite), not an error."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def parse_duration(key: str, value: Any) -> float:
    """Seconds, from a number of seconds or text with a unit: 500ms, 30s, 5m, 6h, 1d."""
    if isinstance(value, bool):
        raise ConfigError(key, f"{shown(value)} is not a duration")
    if isinstance(value, (int, float)):
        seconds = _as_float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(
                key, f"{shown(value)} is not a duration (use seconds or 500ms, 30s, 5m, 6h, 1d)"
            )
        seconds = _as_float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise ConfigError(key, f"{shown(value)} is not a duration of at most a year")
    if seconds < 0:
        raise ConfigError(key, f"{shown(value)} is negative")
    return seconds


def number(key: str, value: Any, kind: type, low: float, high: float | None = None) -> Any:
    if isinstance(value, str) and not isinstance(value, FromEnvironment):
        raise ConfigError(key, f"{shown(value)} is a string; write the {kind.__name__} without quotes")
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            raise ConfigError(key, f"{shown(value)} is not a {kind.__name__}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(_as_float(value))
        or (kind is int and value != int(value))
    ):
        raise ConfigError(key, f"{shown(value)} is not a finite {kind.__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(key, f"{shown(value)} must be {bound}")
    return kind(value)


def boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = ("1", "true", "yes", "on", "0", "false", "no", "off")
    if isinstance(value, FromEnvironment) and value.lower() in words:
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(key, f"{value!r} is not true or false")


def allowed_hosts(key: str, value: Any) -> tuple[str, ...]:
    """Host names (a list, or a comma-separated string from the environment): each a DNS name, one with a
    leading dot for every name under it, or `*` for any."""
    from_environment = isinstance(value, FromEnvironment)
    names = [n.strip() for n in value.split(",") if n.strip()] if from_environment else value
    if not isinstance(names, (list, tuple)) or len(names) > 256:
        raise ConfigError(key, "must be a list of at most 256 host names")
    for name in names:
        if not isinstance(name, str) or not (name == "*" or _HOST_NAME.fullmatch(name.lower())):
            raise ConfigError(key, f"{shown(name)} is not a host name (letters, digits, - and dots)")
    return tuple(name.lower() for name in names)


def check_token(key: str, token: object) -> str:
    """A bearer token as HTTP can carry it: at least 16 printable ASCII characters, no spaces."""
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(key, "is blank")
    if not all("!" <= c <= "~" for c in token):
        raise ConfigError(key, "must be printable ASCII without spaces or control characters")
    if len(token) < 16:
        raise ConfigError(key, "must be a string of at least 16 characters")
    return token


def data_dir(key: str, value: Any) -> Path:
    """A directory path. Blank is a mistake (it would be the working directory), not the default."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(key, "must be a directory path, not blank")
    return Path(value).expanduser()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
