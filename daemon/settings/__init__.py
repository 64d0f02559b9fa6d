"""benchd's configuration: one pydantic-settings model of the config file, BENCHD_* variables and flags.

Below both `lifecycle` (the scheduler reads the schedules) and `server` (the
daemon is built from the settings), so neither imports the other for it.
"""

from benchd.settings.model import (
    DEFAULT_PORT,
    ENV_KEYS,
    MAX_TOKEN_FILE_BYTES,
    Settings,
    load_settings,
    settings_from_tree,
)
from benchd.settings.schedules import ALL_DEVICES, Schedule, default_workloads
from benchd.settings.values import ConfigError, FromEnvironment, check_token, is_loopback, parse_duration

__all__ = [
    "ALL_DEVICES",
    "DEFAULT_PORT",
    "ENV_KEYS",
    "MAX_TOKEN_FILE_BYTES",
    "ConfigError",
    "FromEnvironment",
    "Schedule",
    "Settings",
    "check_token",
    "default_workloads",
    "is_loopback",
    "load_settings",
    "parse_duration",
    "settings_from_tree",
]
