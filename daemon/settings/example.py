"""The config file `benchd config example` prints: every setting, its default, the default schedules."""

from __future__ import annotations

from benchd.settings.model import DEFAULT_PORT
from benchd.settings.schedules import default_workloads


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

[health]
window_runs = 3          # a config's verdict is judged over its last runs (docs/health.md)
beyond_runs = 2          # this many of them beyond the band: degraded (failed: failing)
recover_runs = 2         # within the band this many times in a row: healthy again
min_slowdown = 0.065     # a run is beyond its band when slower by this and by 3.25 sigma of the band

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
