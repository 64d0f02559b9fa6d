"""The daemon's configuration: a TOML file, then BENCHD_* environment variables, then flags.

Each layer overrides the one before it, key by key. Everything is validated
at start; an error names the key (as `section.key`) and why it is wrong, so a
typo in a config file stops the daemon before it does anything.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchd import catalog, userfiles
from benchd.catalog import WORKLOADS, suites
from benchd.catalog.spec import MIN_TIMEOUT_SECONDS
from benchd.paths import default_data_dir
from benchd.server.cron import CronError, CronExpression
from benchd.userfiles import KIB, MIB

if TYPE_CHECKING:
    from benchd.catalog.request import RunRequestFields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_PORT = 9655  # marked free in Prometheus's default port allocation list
ENV_CONFIG = "BENCHD_CONFIG"

# Environment variables and the keys they set.
ENV_KEYS = {
    "BENCHD_DATA_DIR": "data_dir",
    "BENCHD_HOST": "server.host",
    "BENCHD_PORT": "server.port",
    "BENCHD_TOKEN": "server.token",
    "BENCHD_TOKEN_FILE": "server.token_file",
    "BENCHD_ALLOWED_HOSTS": "server.allowed_hosts",  # comma-separated
    "BENCHD_QUEUE_SIZE": "runs.queue_size",
    "BENCHD_TIMEOUT": "runs.timeout",
    "BENCHD_GRACE": "runs.grace",
    "BENCHD_MAX_SECONDS_PER_DAY": "runs.max_seconds_per_day",
    "BENCHD_YIELD_TO_TENANTS": "runs.yield_to_tenants",
    "BENCHD_JITTER": "schedule.jitter",
    "BENCHD_START_DELAY": "schedule.start_delay",
    "BENCHD_BUSY_CHECK": "busy_check.enabled",
    "BENCHD_MAX_CPU_LOAD": "busy_check.max_cpu_load",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class FromEnvironment(str):
    """A value read from a BENCHD_* variable: text that may stand for a number, a boolean or a list. In a
    config file the same text is a string where a number belongs (`repeat = "100"`), and refused."""


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or out of range; names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config {key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class Schedule:
    """When one workload's presets run on their own (interval or cron), and the request they make."""

    workload: str
    request: RunRequestFields
    presets: tuple[str, ...]
    interval_seconds: float | None
    cron: CronExpression | None
    devices: tuple[str, ...] = ("auto",)  # as configured: a device, several, or "all" (every accelerator)
    parallel_devices: bool = False  # several devices: all at once, or one after another
    repeat: int = 1  # runs of each config per firing, each in a fresh child: their spread is the noise
    spread_seconds: float = 0.0  # fire times offset by a stable hash of the host's name within this window

    def period_seconds(self, now: datetime) -> float:
        if self.cron is not None:
            return self.cron.typical_interval(now)
        assert self.interval_seconds is not None
        return self.interval_seconds


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str
    port: int
    token: str | None
    queue_size: int
    timeout_seconds: float
    grace_seconds: float
    jitter_seconds: float
    start_delay_seconds: float
    busy_check: bool
    max_cpu_load: float
    skip_when_gpu_busy: bool
    schedules: tuple[Schedule, ...]
    allowed_hosts: tuple[str, ...] = ()  # names the Host header may use besides loopback, IPs, this host
    max_seconds_per_day: float | None = None  # benchmark time a device may spend in any 24 hours
    yield_to_tenants: bool = True  # a run in progress stops (preempted) when a tenant arrives on its device
    quiet_for_seconds: float = (
        600.0  # a preempted scheduled run comes back once its device was quiet this long
    )
    max_preemptions: int = 3  # per schedule in any 24 hours; then the firing is recorded skipped
    warnings: tuple[str, ...] = ()  # said at start: a secret others can read, and the like

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_workloads() -> dict[str, dict[str, Any]]:
    """The embedded default: every workload in the default suite (catalog/suites.py) at the interval it
    declares (`Workload.schedule`), so every host that runs benchd unconfigured measures the same work."""
    return {
        workload.name: {"interval": workload.schedule, "suite": suites.DEFAULT_SUITE}
        for workload in WORKLOADS.values()
        if workload.schedule is not None and suites.DEFAULT_SUITE in workload.suites
    }


def example() -> str:
    """The config file `benchd config example` prints: every setting, and the default schedules."""
    tables = [
        f'[workloads.{name}]\nsuite = "{table["suite"]}"\ninterval = "{table["interval"]}"\n'
        for name, table in default_workloads().items()
    ]
    first, rest = tables[0].splitlines(), "\n".join(tables[1:])
    return (
        _EXAMPLE_HEAD
        + f"""\
{first[0]}
{first[1]:<31} # or: presets = [...], fraction = 1.0, epochs = 2 (`benchd workloads` lists presets)
{first[2]:<31} # or: cron = "30 3 * * *"
{_EXAMPLE_SCHEDULE_OPTIONS}
{rest}"""
    )


_EXAMPLE_HEAD = f"""# benchd configuration. Precedence: this file < BENCHD_* environment variables < flags.
# Durations are seconds or a number with a unit: 500ms, 30s, 5m, 6h, 1d.

# Where datasets, the results store and run logs live (BENCHD_DATA_DIR).
# data_dir = "/var/lib/benchd"

[server]
host = "127.0.0.1"       # BENCHD_HOST; any non-loopback address requires a token
port = {DEFAULT_PORT}             # BENCHD_PORT
# token = "change-me"     # BENCHD_TOKEN; required by POST and DELETE when set (16+ printable characters)
# token_file = "/etc/benchd/token"  # BENCHD_TOKEN_FILE; the token from a file (chmod 600), not in `ps`
# allowed_hosts = ["benchd.example.internal", ".svc.cluster.local"]  # BENCHD_ALLOWED_HOSTS (comma-separated);
#                         # names clients may call the daemon by, besides localhost, IP addresses and this
#                         # host's name; a leading dot allows every name under it (DNS rebinding defence)

[runs]
queue_size = 32          # queued runs beyond this are refused (HTTP 429)
timeout = "1h"           # default per-run timeout
grace = "10s"            # between SIGTERM and SIGKILL when a run is stopped
# max_seconds_per_day = "1h"  # BENCHD_MAX_SECONDS_PER_DAY; benchmark time per device in any 24 hours
yield_to_tenants = true  # BENCHD_YIELD_TO_TENANTS; stop a run (preempted) when a tenant uses its device
quiet_for = "10m"        # a preempted scheduled run comes back once its device was quiet this long
max_preemptions = 3      # per schedule in any 24 hours; after that the firing is recorded skipped

[schedule]
jitter = "5m"            # random delay added to each scheduled run
start_delay = "1m"       # nothing scheduled runs earlier than this after start

[busy_check]
enabled = true           # skip (and record) a scheduled run when the host is busy
max_cpu_load = 0.5       # CPU use (0-1, all cores, over one second) at or above which the host is busy
gpu_processes = true     # busy when other processes use the GPU

# One table per scheduled workload. With a [workloads] table in the file, only
# the workloads listed run on a schedule (all can still be triggered). A suite
# (docs/cli.md) sets presets, fraction and epochs, the same on every machine
# that runs it; without one, set them yourself.
"""
_EXAMPLE_SCHEDULE_OPTIONS = """\
# timeout = "30m"
# device = "auto"               # auto, cpu, cuda, cuda:1, mps, xpu; a list; or "all" (every accelerator)
# timing = "reference"          # or "device": the training steps alone (docs/workloads.md)
# repeat = 3                    # runs of each config per firing: their spread is the config's noise
# spread = "2h"                 # each host fires at its own hashed offset within this window
# precision = "amp-bf16"        # fp32 (as published), tf32, amp-fp16, amp-bf16; compile = true compiles
"""


MAX_DURATION_SECONDS = 365 * 24 * 3600.0  # a year: past it, a timer overflows on some platforms


def parse_duration(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(key, f"{_shown(value)} is not a duration")
    if isinstance(value, (int, float)):
        seconds = _as_float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(
                key, f"{_shown(value)} is not a duration (use seconds or 500ms, 30s, 5m, 6h, 1d)"
            )
        seconds = _as_float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise ConfigError(key, f"{_shown(value)} is not a duration of at most a year")
    if seconds < 0:
        raise ConfigError(key, f"{_shown(value)} is negative")
    return seconds


def _as_float(value: Any) -> float:
    """A number as a float; one too large for a float is infinity (refused as not finite), not an error."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _shown(value: Any) -> str:
    """A value as an error message quotes it: never thousands of characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(key: str, value: Any, kind: type, low: float, high: float | None = None) -> Any:
    if isinstance(value, str) and not isinstance(value, FromEnvironment):
        raise ConfigError(key, f"{_shown(value)} is a string; write the {kind.__name__} without quotes")
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            raise ConfigError(key, f"{_shown(value)} is not a {kind.__name__}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(_as_float(value))
        or (kind is int and value != int(value))
    ):
        raise ConfigError(key, f"{_shown(value)} is not a finite {kind.__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(key, f"{_shown(value)} must be {bound}")
    return kind(value)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = ("1", "true", "yes", "on", "0", "false", "no", "off")
    if isinstance(value, FromEnvironment) and value.lower() in words:
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(key, f"{value!r} is not true or false")


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    return value


def _reject_unknown(prefix: str, table: Mapping[str, Any], known: set[str]) -> None:
    for name in table:
        if name not in known:
            raise ConfigError(f"{prefix}{name}", f"unknown key; known keys: {', '.join(sorted(known))}")


MIN_INTERVAL_SECONDS = 60.0

SCHEDULE_TIMING_KEYS = {"interval", "cron", "parallel_devices", "repeat", "spread"}
MAX_REPEAT = 100
ALL_DEVICES = "all"


def _schedule(name: str, table: Mapping[str, Any], default_timeout: float) -> Schedule:
    """A [workloads.NAME] table: when (interval or cron), and what to run, by the request model's rules."""
    from benchd.catalog import request as request_model  # pydantic: only when there is a config to read

    key = f"workloads.{name}"
    known = SCHEDULE_TIMING_KEYS | set(request_model.RunRequestFields.model_fields) - {"workload"}
    _reject_unknown(f"{key}.", table, known)
    if ("interval" in table) == ("cron" in table):
        raise ConfigError(key, "needs exactly one of interval or cron")
    interval = cron = None
    if "interval" in table:
        interval = parse_duration(f"{key}.interval", table["interval"])
        if interval < MIN_INTERVAL_SECONDS:
            raise ConfigError(f"{key}.interval", "must be at least a minute (60s), as often as cron can fire")
    else:
        try:
            cron = CronExpression.parse(str(table["cron"]))
        except CronError as exc:
            raise ConfigError(f"{key}.cron", str(exc)) from None
    values = {k: v for k, v in table.items() if k not in SCHEDULE_TIMING_KEYS}
    values["timeout"] = _timeout(f"{key}.timeout", table.get("timeout", default_timeout))
    devices = _devices(key, values.pop("device", "auto"))
    try:
        request = request_model.parse({"workload": name, **values})
        configs = request.configs()
        for device in devices:  # each checked as the request model checks one
            if device != ALL_DEVICES:
                request_model.parse({"workload": name, "device": device})
    except catalog.CatalogError as exc:
        where = key if exc.field in ("", "workload") else f"{key}.{exc.field}"
        raise ConfigError(where, exc.reason) from None
    parallel = _boolean(f"{key}.parallel_devices", table.get("parallel_devices", False))
    repeat = _number(f"{key}.repeat", table.get("repeat", 1), int, 1, MAX_REPEAT)
    spread = parse_duration(f"{key}.spread", table.get("spread", 0))
    period = interval if interval is not None else 24 * 3600.0
    if spread > period:
        raise ConfigError(f"{key}.spread", "must not be longer than the schedule's interval (a day for cron)")
    presets = tuple(c.preset for c in configs)
    return Schedule(name, request, presets, interval, cron, devices, parallel, repeat, spread)


def _timeout(key: str, value: Any) -> float:
    seconds = parse_duration(key, value)
    if seconds < MIN_TIMEOUT_SECONDS:
        raise ConfigError(key, f"must be at least {MIN_TIMEOUT_SECONDS:g}s: a run cannot even start in less")
    return seconds


def _daily_budget(value: Any) -> float | None:
    """`runs.max_seconds_per_day`: a duration of at least a minute, or absent (no limit)."""
    if value is None:
        return None
    seconds = parse_duration("runs.max_seconds_per_day", value)
    if not MIN_INTERVAL_SECONDS <= seconds <= 24 * 3600:
        raise ConfigError("runs.max_seconds_per_day", "must be between a minute and a day")
    return seconds


def _data_dir(value: Any) -> Path:
    """`data_dir` (BENCHD_DATA_DIR, --data-dir): a path; left out, the platform's default. Blank is a
    mistake (it would be the working directory), not a request for the default."""
    if value is None:
        return default_data_dir()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("data_dir", "must be a directory path, not blank")
    return Path(value).expanduser()


def _devices(key: str, value: Any) -> tuple[str, ...]:
    """`device`: one device, a list of them, or "all" (every accelerator the host has, else the CPU)."""
    chosen = value if isinstance(value, list) else [value]
    if not chosen or not all(isinstance(device, str) for device in chosen) or len(chosen) > 64:
        raise ConfigError(f"{key}.device", 'must be a device, a list of 1 to 64 devices, or "all"')
    if ALL_DEVICES in chosen and len(chosen) > 1:
        raise ConfigError(f"{key}.device", '"all" already means every device; list devices or say "all"')
    return tuple(dict.fromkeys(chosen))


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _config_path(config_path: Path | None, environ: Mapping[str, str]) -> Path | None:
    return config_path or (Path(environ[ENV_CONFIG]) if environ.get(ENV_CONFIG) else None)


MAX_CONFIG_BYTES = 1 * MIB  # a config with a schedule per workload is a few KiB
MAX_TOKEN_FILE_BYTES = 4 * KIB


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(userfiles.read_text(path, MAX_CONFIG_BYTES, "config file"))
    except userfiles.UserFileError as exc:
        raise ConfigError("file", str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError("file", f"{path}: nested too deeply to be a benchd config") from None


def load_layers(
    config_path: Path | None, environ: Mapping[str, str], flags: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge file, environment and flags (each `dotted.key: value`) into one tree."""
    path = _config_path(config_path, environ)
    tree: dict[str, Any] = _read_file(path) if path is not None else {}
    for variable, dotted in ENV_KEYS.items():
        if environ.get(variable):
            _set_dotted(tree, dotted, FromEnvironment(environ[variable]))
    for dotted, value in flags.items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    return tree


def settings_from_tree(tree: Mapping[str, Any], token_in_file: Path | None = None) -> Settings:
    """Validated settings; `token_in_file` is the config file when the token is written in it."""
    _reject_unknown("", tree, {"data_dir", "server", "runs", "schedule", "busy_check", "workloads"})
    server = _table("server", tree.get("server", {}))
    _reject_unknown("server.", server, {"host", "port", "token", "token_file", "allowed_hosts"})
    runs = _table("runs", tree.get("runs", {}))
    _reject_unknown(
        "runs.",
        runs,
        {
            "queue_size",
            "timeout",
            "grace",
            "max_seconds_per_day",
            "yield_to_tenants",
            "quiet_for",
            "max_preemptions",
        },
    )
    schedule = _table("schedule", tree.get("schedule", {}))
    _reject_unknown("schedule.", schedule, {"jitter", "start_delay"})
    busy = _table("busy_check", tree.get("busy_check", {}))
    _reject_unknown("busy_check.", busy, {"enabled", "max_cpu_load", "gpu_processes"})
    workloads = _table("workloads", tree.get("workloads", default_workloads()))

    host = str(server.get("host", "127.0.0.1"))
    token, warnings = _token(server, token_in_file)
    if token is None and not is_loopback(host):
        raise ConfigError(
            "server.token", f"is required to listen on the non-loopback address {host} (set BENCHD_TOKEN)"
        )
    timeout = _timeout("runs.timeout", runs.get("timeout", "1h"))
    return Settings(
        data_dir=_data_dir(tree.get("data_dir")),
        host=host,
        port=_number("server.port", server.get("port", DEFAULT_PORT), int, 0, 65535),
        token=token,
        queue_size=_number("runs.queue_size", runs.get("queue_size", 32), int, 1, 10_000),
        timeout_seconds=timeout,
        grace_seconds=parse_duration("runs.grace", runs.get("grace", "10s")),
        jitter_seconds=parse_duration("schedule.jitter", schedule.get("jitter", "5m")),
        start_delay_seconds=parse_duration("schedule.start_delay", schedule.get("start_delay", "1m")),
        busy_check=_boolean("busy_check.enabled", busy.get("enabled", True)),
        max_cpu_load=_number("busy_check.max_cpu_load", busy.get("max_cpu_load", 0.5), float, 0.0),
        skip_when_gpu_busy=_boolean("busy_check.gpu_processes", busy.get("gpu_processes", True)),
        schedules=tuple(
            _schedule(name, _table(f"workloads.{name}", table), timeout) for name, table in workloads.items()
        ),
        allowed_hosts=_allowed_hosts("server.allowed_hosts", server.get("allowed_hosts", [])),
        max_seconds_per_day=_daily_budget(runs.get("max_seconds_per_day")),
        yield_to_tenants=_boolean("runs.yield_to_tenants", runs.get("yield_to_tenants", True)),
        quiet_for_seconds=parse_duration("runs.quiet_for", runs.get("quiet_for", "10m")),
        max_preemptions=_number("runs.max_preemptions", runs.get("max_preemptions", 3), int, 0, 100),
        warnings=warnings,
    )


_HOST_NAME = re.compile(r"\.?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?", re.ASCII)


def _allowed_hosts(key: str, value: Any) -> tuple[str, ...]:
    """Host names (a list, or a comma-separated string from the environment): each a DNS name, one with a
    leading dot for every name under it, or `*` for any."""
    from_environment = isinstance(value, FromEnvironment)
    names = [n.strip() for n in value.split(",") if n.strip()] if from_environment else value
    if not isinstance(names, list) or len(names) > 256:
        raise ConfigError(key, "must be a list of at most 256 host names")
    for name in names:
        if not isinstance(name, str) or not (name == "*" or _HOST_NAME.fullmatch(name.lower())):
            raise ConfigError(key, f"{_shown(name)} is not a host name (letters, digits, - and dots)")
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


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def _token(server: Mapping[str, Any], holder: Path | None) -> tuple[str | None, tuple[str, ...]]:
    """The token from `token` or `token_file` (not both), and warnings about who else can read it."""
    given, token_file = server.get("token"), server.get("token_file")
    if given is not None and token_file is not None:
        raise ConfigError("server.token_file", "set server.token or server.token_file, not both")
    warnings = []
    if token_file is not None:
        path = Path(str(token_file)).expanduser()
        try:
            given = userfiles.read_text(path, MAX_TOKEN_FILE_BYTES, "token file").rstrip("\r\n")
        except userfiles.UserFileError as exc:
            raise ConfigError("server.token_file", str(exc)) from None
        token = check_token("server.token_file", given)
        if _readable_by_others(path):
            warnings.append(f"token file {path} can be read or written by others: chmod 600 it")
        return token, tuple(warnings)
    if given is None or given == "":
        return None, ()
    token = check_token("server.token", given)
    if holder is not None and _readable_by_others(holder):
        warnings.append(f"config file {holder} holds the token and can be read or written by others: "
                        "chmod 600 it, or use server.token_file")  # fmt: skip
    return token, tuple(warnings)


def load_settings(
    config_path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    tree = load_layers(config_path, environ, flags or {})
    path = _config_path(config_path, environ)
    in_file = path is not None and "token" in _table("server", _read_file(path).get("server", {}))
    return settings_from_tree(tree, path if in_file else None)
