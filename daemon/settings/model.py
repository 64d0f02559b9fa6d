"""The daemon's configuration as one pydantic-settings model: a TOML file, BENCHD_* variables, flags.

Each source overrides the one before it, key by key (pydantic-settings
merges them). Everything is validated at start; an error names the key (as
`section.key`) and why it is wrong, so a typo in a config file stops the
daemon before it does anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from benchd import userfiles
from benchd.health.verdict import Policy
from benchd.paths import default_data_dir
from benchd.settings import values
from benchd.settings.schedules import Schedule, default_workloads, run_timeout, schedules
from benchd.settings.values import ConfigError, FromEnvironment, check_token, is_loopback
from benchd.userfiles import KIB, MIB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_PORT = 9655  # marked free in Prometheus's default port allocation list
ENV_CONFIG = "BENCHD_CONFIG"
MAX_CONFIG_BYTES = 1 * MIB  # a config with a schedule per workload is a few KiB
MAX_TOKEN_FILE_BYTES = 4 * KIB

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


def _keyless(check: Any, *bounds: Any) -> BeforeValidator:
    """A values.* check as a field validator: the model's error names the key from where the value sat."""
    return BeforeValidator(lambda value: check("", value, *bounds))


Seconds = Annotated[float, _keyless(values.parse_duration)]
Flag = Annotated[bool, _keyless(values.boolean)]


def _daily_budget(_key: str, value: Any) -> float | None:
    """`runs.max_seconds_per_day`: a duration between a minute and a day, or absent (no limit)."""
    if value is None:
        return None
    seconds = values.parse_duration("", value)
    if not 60 <= seconds <= 24 * 3600:
        raise ConfigError("", "must be between a minute and a day")
    return seconds


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: Annotated[str, BeforeValidator(str)] = "127.0.0.1"  # any non-loopback address requires a token
    port: Annotated[int, _keyless(values.number, int, 0, 65535)] = DEFAULT_PORT
    token: str | None = None  # checked: 16+ printable characters; read from token_file when that is set
    token_file: str | None = None
    allowed_hosts: Annotated[tuple[str, ...], _keyless(values.allowed_hosts)] = ()

    @model_validator(mode="before")
    @classmethod
    def _token(cls, given: Any) -> Any:
        """The token from `token` or `token_file` (not both), checked: either way it ends up in `token`."""
        if not isinstance(given, Mapping):
            return given
        token, token_file = given.get("token"), given.get("token_file")
        if token is not None and token_file is not None:
            raise ConfigError("server.token_file", "set server.token or server.token_file, not both")
        if token_file is not None:
            path = Path(str(token_file)).expanduser()
            try:
                text = userfiles.read_text(path, MAX_TOKEN_FILE_BYTES, "token file").rstrip("\r\n")
            except userfiles.UserFileError as exc:
                raise ConfigError("server.token_file", str(exc)) from None
            return {**given, "token": check_token("server.token_file", text), "token_file": str(path)}
        if token is None or token == "":
            return {**given, "token": None}
        return {**given, "token": check_token("server.token", token)}


class RunsSettings(_Section):
    queue_size: Annotated[int, _keyless(values.number, int, 1, 10_000)] = 32  # beyond it: HTTP 429
    timeout: Annotated[float, _keyless(run_timeout)] = 3600.0  # seconds; each schedule may set its own
    grace: Seconds = 10.0  # between SIGTERM and SIGKILL when a run is stopped
    max_seconds_per_day: Annotated[float | None, _keyless(_daily_budget)] = None  # per device, any 24 hours
    yield_to_tenants: Flag = True  # a run in progress stops (preempted) when a tenant arrives on its device
    quiet_for: Seconds = 600.0  # a preempted scheduled run comes back once its device was quiet this long
    max_preemptions: Annotated[int, _keyless(values.number, int, 0, 100)] = 3  # per schedule in 24 hours


class ScheduleSettings(_Section):
    jitter: Seconds = 300.0  # random delay added to each scheduled run
    start_delay: Seconds = 60.0  # nothing scheduled runs earlier than this after start


class BusyCheckSettings(_Section):
    enabled: Flag = True  # skip (and record) a scheduled run when the host is busy
    max_cpu_load: Annotated[float, _keyless(values.number, float, 0.0)] = 0.5  # all cores, over a second
    gpu_processes: Flag = True  # busy when other processes use the GPU


class HealthSettings(_Section):
    """How much evidence a device verdict needs (health/verdict.py, docs/health.md)."""

    window_runs: Annotated[int, _keyless(values.number, int, 1, 50)] = 3  # the recent runs judged
    beyond_runs: Annotated[int, _keyless(values.number, int, 1, 50)] = 2  # of them beyond the band: degraded
    recover_runs: Annotated[int, _keyless(values.number, int, 1, 50)] = 2  # within it in a row: healthy again
    min_slowdown: Annotated[float, _keyless(values.number, float, 0.0, 10.0)] = 0.065  # and its noise

    @model_validator(mode="after")
    def _fits(self) -> HealthSettings:
        if self.beyond_runs > self.window_runs:
            raise ConfigError(
                "health.beyond_runs", f"must be at most health.window_runs ({self.window_runs})"
            )
        return self

    def policy(self) -> Policy:
        return Policy(self.window_runs, self.beyond_runs, self.recover_runs, self.min_slowdown)


class Settings(BaseSettings):
    """Everything `benchd serve` is configured with (docs/api.md, "Configuration")."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    data_dir: Annotated[Path, _keyless(values.data_dir)] = Field(default_factory=default_data_dir)
    server: ServerSettings = ServerSettings()
    runs: RunsSettings = RunsSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    busy_check: BusyCheckSettings = BusyCheckSettings()
    health: HealthSettings = HealthSettings()
    workloads: dict[str, Any] = Field(default_factory=default_workloads)  # the tables; `schedules` below
    _schedules: tuple[Schedule, ...] = PrivateAttr(default=())
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _whole(self) -> Settings:
        if self.server.token is None and not is_loopback(self.server.host):
            raise ConfigError(
                "server.token",
                f"is required to listen on the non-loopback address {self.server.host} (set BENCHD_TOKEN)",
            )
        self._schedules = schedules(self.workloads, self.runs.timeout)
        return self

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        return self._schedules

    @property
    def warnings(self) -> tuple[str, ...]:
        """Said at start: a secret others can read, and the like."""
        return self._warnings

    @property
    def loopback(self) -> bool:
        return is_loopback(self.server.host)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (given to the constructor), then BENCHD_* variables, then the config file; nothing else."""
        return init_settings, _Environment(settings_cls), _ConfigFile(settings_cls)


# Where the sources read from for the Settings being built: load_settings's arguments.
_LAYERS: ContextVar[tuple[Path | None, Mapping[str, str]]] = ContextVar("benchd_settings_layers")


class _Environment(PydanticBaseSettingsSource):
    """BENCHD_* variables (ENV_KEYS), each as the key it sets, as FromEnvironment text."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads them all at once

    def __call__(self) -> dict[str, Any]:
        _path, environ = _LAYERS.get()
        tree: dict[str, Any] = {}
        for variable, dotted in ENV_KEYS.items():
            if environ.get(variable):
                _set_dotted(tree, dotted, FromEnvironment(environ[variable]))
        return tree


class _ConfigFile(PydanticBaseSettingsSource):
    """The TOML file (--config, else BENCHD_CONFIG), read with a bound on its size."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path, _environ = _LAYERS.get()
        return read_config_file(path) if path is not None else {}


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(userfiles.read_text(path, MAX_CONFIG_BYTES, "config file"))
    except userfiles.UserFileError as exc:
        raise ConfigError("file", str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError("file", f"{path}: nested too deeply to be a benchd config") from None


def config_error(exc: ValidationError) -> ConfigError:
    """The first problem pydantic found, as the key it concerns and the reason."""
    problem = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in problem["loc"])
    error = problem.get("ctx", {}).get("error")
    if isinstance(error, ConfigError):
        return ConfigError(error.key or key, error.reason)
    if problem["type"] == "extra_forbidden":
        known = ", ".join(sorted(_fields_at(problem["loc"][:-1])))
        return ConfigError(key, f"unknown key; known keys: {known}")
    if problem["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return ConfigError(key, "must be a table")
    return ConfigError(key or "file", f"{problem['msg'][0].lower()}{problem['msg'][1:]}")


def _fields_at(location: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in location:
        model = model.model_fields[part].annotation
    return list(model.model_fields)


def settings_from_tree(tree: Mapping[str, Any]) -> Settings:
    """Settings from one tree of values, as a config file holds them (no other source)."""
    if not isinstance(tree, Mapping):
        raise ConfigError("file", "must be a table")
    try:
        with _layers(None, {}):
            return Settings.model_validate(tree)
    except ValidationError as exc:
        raise config_error(exc) from None


def _config_path(config_path: Path | None, environ: Mapping[str, str]) -> Path | None:
    return config_path or (Path(environ[ENV_CONFIG]) if environ.get(ENV_CONFIG) else None)


@contextmanager
def _layers(path: Path | None, environ: Mapping[str, str]) -> Iterator[None]:
    reset = _LAYERS.set((path, environ))
    try:
        yield
    finally:
        _LAYERS.reset(reset)


def load_settings(
    config_path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The file, the environment and `flags` (each `dotted.key: value`, None for not given), merged."""
    environ = os.environ if environ is None else environ
    path = _config_path(config_path, environ)
    given: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set_dotted(given, dotted, value)
    try:
        with _layers(path, environ):
            settings = Settings(**given)
    except ValidationError as exc:
        raise config_error(exc) from None
    settings._warnings = _warnings(settings, path)
    return settings


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def _warnings(settings: Settings, config_path: Path | None) -> tuple[str, ...]:
    """Who else can read the token: its file, or the config file when the token is written in it."""
    token_file = settings.server.token_file
    if token_file is not None and _readable_by_others(Path(token_file)):
        return (f"token file {token_file} can be read or written by others: chmod 600 it",)
    if settings.server.token is None or token_file is not None or config_path is None:
        return ()
    in_file = "token" in (read_config_file(config_path).get("server") or {})
    if in_file and _readable_by_others(config_path):
        return (f"config file {config_path} holds the token and can be read or written by others: "
                "chmod 600 it, or use server.token_file",)  # fmt: skip
    return ()
