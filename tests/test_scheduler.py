"""The scheduler in-process: a schedule on several devices runs them one after another, or at once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchd.lifecycle.recording import RunRequest
from benchd.lifecycle.scheduler import CHAIN_POLL_SECONDS, Scheduler
from benchd.results.model import Origin
from benchd.settings import load_settings


class FakeQueue:
    """Takes submissions and says a device is busy until the test lets its runs finish."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []  # (device, preset)
        self.busy: set[str] = set()
        self.repeats: list[int] = []

    def submit(self, request: RunRequest, origin: Origin) -> tuple[int, bool]:
        assert origin == Origin.SCHEDULE
        self.submitted.append((request.device, request.config.preset))
        self.repeats.append(request.repeat)
        self.busy.add(request.device)
        return len(self.submitted), False

    def device_busy(self, device: str) -> bool:
        return device in self.busy


def _scheduler(tmp_path: Path, table: str) -> tuple[Scheduler, FakeQueue]:
    path = tmp_path / "benchd.toml"
    path.write_text(
        '[busy_check]\nenabled = false\n[workloads.vae]\ninterval = "1h"\npresets = ["bs128"]\n' + table
    )
    settings = load_settings(path, None, {"HOME": str(tmp_path)})
    queue = FakeQueue()
    host = {"all": ["cuda:0", "cuda:1", "cuda:2"], "cuda:1": ["cuda:1"], "cuda:0": ["cuda:0"]}
    return Scheduler(settings, None, queue, host.get), queue  # type: ignore[arg-type]


def test_all_devices_one_after_another(tmp_path: Path) -> None:
    scheduler, queue = _scheduler(tmp_path, 'device = "all"\n')
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule)
    assert queue.submitted == [("cuda:0", "bs128")]  # the first device only
    scheduler._advance_chains()
    assert len(queue.submitted) == 1  # cuda:0 still has its run
    queue.busy.clear()
    scheduler._advance_chains()
    assert queue.submitted[-1] == ("cuda:1", "bs128")
    queue.busy.clear()
    scheduler._advance_chains()
    queue.busy.clear()
    scheduler._advance_chains()
    assert [device for device, _ in queue.submitted] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
    ] and not scheduler._chains


def test_listed_devices_at_once_with_parallel_devices(tmp_path: Path) -> None:
    scheduler, queue = _scheduler(tmp_path, 'device = ["cuda:1", "cuda:0"]\nparallel_devices = true\n')
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule)
    assert queue.submitted == [("cuda:1", "bs128"), ("cuda:0", "bs128")] and not scheduler._chains


def test_a_repeated_schedule_queues_each_config_that_many_times(tmp_path: Path) -> None:
    """Each repeat is its own run (repeat index 0, 1, 2): the queue takes them as distinct, not as twins."""
    scheduler, queue = _scheduler(tmp_path, 'device = "cuda:0"\nrepeat = 3\n')
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule)
    assert queue.submitted == [("cuda:0", "bs128")] * 3 and queue.repeats == [0, 1, 2]


def test_a_busy_host_skips_each_config_once_however_often_it_repeats(tmp_path: Path, monkeypatch) -> None:
    scheduler, queue = _scheduler(tmp_path, 'device = "cuda:0"\nrepeat = 3\n')
    monkeypatch.setattr("benchd.lifecycle.scheduler.busy_reason", lambda _settings, _device: "host busy")
    skipped: list[tuple[str, int, str]] = []
    monkeypatch.setattr(
        scheduler, "_record_skipped", lambda r, why: skipped.append((r.config.preset, r.repeat, why))
    )
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule)
    assert queue.submitted == [] and skipped == [("bs128", 0, "host busy")]  # one record, not three


@pytest.mark.parametrize("device", ["cuda:3", "mps"])
def test_a_device_the_host_lacks_waits_like_unknown_devices(tmp_path: Path, device: str) -> None:
    scheduler, queue = _scheduler(tmp_path, f'device = "{device}"\n')
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule) is False and queue.submitted == []


class SteppedClock:
    """A wall clock the test can step, and a monotonic clock that only moves forward."""

    def __init__(self, wall: float) -> None:
        self.wall_time = wall
        self.monotonic_time = 1000.0

    def wall(self) -> float:
        return self.wall_time

    def monotonic(self) -> float:
        return self.monotonic_time

    def advance(self, seconds: float) -> None:
        self.wall_time += seconds
        self.monotonic_time += seconds


def _clocked(tmp_path: Path, timing: str, clock: SteppedClock) -> tuple[Scheduler, FakeQueue]:
    path = tmp_path / "benchd.toml"
    path.write_text(
        "[busy_check]\nenabled = false\n[schedule]\njitter = 0\nstart_delay = 0\n"
        f'[workloads.vae]\n{timing}\npresets = ["bs128"]\ndevice = "cuda:0"\n'
    )
    queue = FakeQueue()
    settings = load_settings(path, None, {"HOME": str(tmp_path)})
    scheduler = Scheduler(settings, None, queue, {"cuda:0": ["cuda:0"]}.get, clock)  # type: ignore[arg-type]
    scheduler.start_schedules()
    return scheduler, queue


def _run_until(scheduler: Scheduler, queue: FakeQueue, clock: SteppedClock, limit: float) -> float:
    """Seconds of monotonic time until the next submission, as the loop would sleep them."""
    waited = 0.0
    fired = len(queue.submitted)
    while len(queue.submitted) == fired:
        pause = scheduler.tick()
        if len(queue.submitted) > fired:
            break
        assert waited < limit, f"nothing fired within {limit} s"
        clock.advance(max(pause, 0.0))
        waited += max(pause, 0.0)
    queue.busy.clear()
    return waited


def test_an_interval_counts_real_seconds_when_the_wall_clock_steps_back(tmp_path: Path) -> None:
    clock = SteppedClock(wall=1_700_000_000.0)
    scheduler, queue = _clocked(tmp_path, 'interval = "1h"', clock)
    assert _run_until(scheduler, queue, clock, 60) == 0  # the first firing, at once (no start delay)
    clock.advance(600)
    clock.wall_time -= 3600  # NTP steps the wall clock back an hour
    assert _run_until(scheduler, queue, clock, 7200) == pytest.approx(3000)  # the hour's remaining 50 min


@pytest.mark.parametrize("step", [-3600.0, 7200.0])
def test_a_cron_is_worked_out_again_when_the_wall_clock_jumps(tmp_path: Path, step: float) -> None:
    from datetime import datetime

    half_past = datetime(2026, 11, 30, 10, 30).timestamp()
    clock = SteppedClock(wall=half_past)
    scheduler, queue = _clocked(tmp_path, 'cron = "0 * * * *"', clock)
    clock.advance(60)
    clock.wall_time += step  # 09:31 or 12:31: the next :00 is 29 minutes away either way
    assert _run_until(scheduler, queue, clock, 7200) == pytest.approx(29 * 60)
    assert datetime.fromtimestamp(clock.wall_time).minute == 0
    next_firing = scheduler.next_due()["vae"]
    assert next_firing - clock.wall_time == pytest.approx(3600)


def test_jitter_never_accumulates_over_an_intervals_firings(tmp_path: Path) -> None:
    """Each firing is its slot plus fresh jitter: a daily run stays within the jitter of its start time."""
    clock = SteppedClock(wall=1_700_000_000.0)
    path = tmp_path / "benchd.toml"
    path.write_text('[busy_check]\nenabled = false\n[schedule]\njitter = "5m"\nstart_delay = 0\n'
                    '[workloads.vae]\ninterval = "1h"\npresets = ["bs128"]\ndevice = "cuda:0"\n')  # fmt: skip
    queue = FakeQueue()
    settings = load_settings(path, None, {"HOME": str(tmp_path)})
    scheduler = Scheduler(settings, None, queue, {"cuda:0": ["cuda:0"]}.get, clock)  # type: ignore[arg-type]
    scheduler._random.uniform = lambda low, high: high  # type: ignore[method-assign] - the most jitter
    start = clock.monotonic()
    scheduler.start_schedules()
    fired_at = []
    for _ in range(24):
        _run_until(scheduler, queue, clock, 7200)
        fired_at.append(clock.monotonic() - start)
    assert fired_at == [300.0 + 3600 * hour for hour in range(24)]  # not 300 more every hour


def _spread_scheduler(tmp_path: Path, timing: str, hostname: str, clock: SteppedClock) -> Scheduler:
    path = tmp_path / f"{hostname}.toml"
    path.write_text('[busy_check]\nenabled = false\n[schedule]\njitter = 0\nstart_delay = 0\n'
                    f'[workloads.vae]\n{timing}\nspread = "2h"\npresets = ["bs128"]\n'
                    'device = "cuda:0"\n')  # fmt: skip
    settings = load_settings(path, None, {"HOME": str(tmp_path)})
    devices = {"cuda:0": ["cuda:0"]}.get
    scheduler = Scheduler(settings, None, FakeQueue(), devices, clock, hostname)  # type: ignore[arg-type]
    scheduler.start_schedules()
    return scheduler


def test_spread_offsets_are_stable_across_restarts_and_differ_across_hosts(tmp_path: Path) -> None:
    """A thousand nodes with one config do not start together: each at its hashed place in the window."""
    from datetime import datetime

    midnight = datetime(2026, 11, 30, 0, 0).timestamp()
    firsts = {}
    for index in range(200):
        host = f"gpu-node-{index:03d}"
        once = _spread_scheduler(tmp_path, 'interval = "1d"', host, SteppedClock(midnight + 60))
        again = _spread_scheduler(
            tmp_path, 'interval = "1d"', host, SteppedClock(midnight + 3600)
        )  # restarted
        time_of_day = (once.next_due()["vae"] - midnight) % 86400
        assert (again.next_due()["vae"] - midnight) % 86400 == pytest.approx(
            time_of_day
        )  # the same time of day
        firsts[host] = time_of_day
    assert all(0 <= offset < 2 * 3600 for offset in firsts.values())  # within the window
    assert len({round(offset) for offset in firsts.values()}) > 190  # spread over the window


def test_a_spread_cron_fires_at_its_offset_even_when_started_inside_it(tmp_path: Path) -> None:
    from datetime import datetime

    four = datetime(2026, 11, 30, 4, 0).timestamp()
    probe = _spread_scheduler(tmp_path, 'cron = "0 4 * * *"', "gpu-node-007", SteppedClock(four - 600))
    offset = probe.spread_offset(probe._settings.schedules[0])
    assert probe.next_due()["vae"] == pytest.approx(four + offset)
    inside = _spread_scheduler(
        tmp_path, 'cron = "0 4 * * *"', "gpu-node-007", SteppedClock(four + offset / 2)
    )
    assert inside.next_due()["vae"] == pytest.approx(four + offset)  # today's firing, not tomorrow's


def _recording(tmp_path: Path, store, clock: SteppedClock, runs: str, timing: str):  # type: ignore[no-untyped-def]
    """A scheduler over a real store (it records skipped firings there), with `[runs]` and one schedule."""
    from benchd.lifecycle.ledger import RunLedger
    from benchd.server.scoreboard import Scoreboard

    path = tmp_path / "benchd.toml"
    path.write_text('[busy_check]\nenabled = false\n[schedule]\njitter = 0\nstart_delay = 0\n'
                    f'[runs]\n{runs}\n[workloads.vae]\n{timing}\npresets = ["bs128"]\n'
                    'device = "cuda:0"\n')  # fmt: skip
    settings = load_settings(path, None, {"HOME": str(tmp_path)})
    queue = FakeQueue()
    ledger = RunLedger(store, Scoreboard().record)
    return Scheduler(settings, ledger, queue, {"cuda:0": ["cuda:0"]}.get, clock), queue  # type: ignore[arg-type]


def test_a_firing_that_would_exceed_the_daily_budget_is_skipped_with_the_reason(tmp_path: Path) -> None:
    from benchd.results.store import ResultsStore

    store = ResultsStore(tmp_path / "benchd.sqlite3")
    config = {"workload": "vae", "preset": "bs128", "batch_size": 128, "fraction": 1.0, "epochs": 1,
              "seed": 1, "options": {}}  # fmt: skip
    clock = SteppedClock(wall=1_700_000_000.0)
    for hours_ago, seconds in ((30, 1000.0), (5, 1500.0)):  # the first is outside the last 24 hours
        run_id = store.create_run(
            config, requested_device="cuda:0", benchd_version="test", sample_unit="images"
        )
        finished = clock.wall_time - hours_ago * 3600
        store._db.execute("UPDATE runs SET device = 'cuda:0', state = 'finished', outcome = 'ok', "
                          "started_at = ?, finished_at = ? WHERE id = ?",
                          (finished - seconds, finished, run_id))  # fmt: skip
    scheduler, queue = _recording(tmp_path, store, clock, 'max_seconds_per_day = "45m"', 'interval = "1h"')
    (schedule,) = scheduler._settings.schedules
    assert scheduler._fire(schedule)
    assert queue.submitted == []  # 1,500 s spent and about 1,500 s more: over 2,700 s
    (skipped,) = store.list_runs(outcome="skipped")
    assert (
        "daily budget: cuda:0 spent 1500 s" in (skipped.message or "") and "about 1500 s" in skipped.message
    )
    assert store.benchmark_seconds("cuda:0", clock.wall_time - 24 * 3600) == 1500.0
    store.close()


def _preempted_run(run_id: int) -> SimpleNamespace:
    config = {"workload": "vae", "preset": "bs128", "batch_size": 128, "options": {}, "epochs": 1,
              "fraction": 1.0, "workers": None, "seed": 1, "timing": "reference"}  # fmt: skip
    return SimpleNamespace(id=run_id, origin=Origin.SCHEDULE, workload="vae", config=config, device="cuda:0",
                           requested_device="cuda:0", timeout_seconds=60.0)  # fmt: skip


def test_a_preempted_run_comes_back_after_its_device_was_quiet_for_quiet_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchd.lifecycle import scheduler as scheduler_module

    clock = SteppedClock(wall=1_700_000_000.0)
    scheduler, queue = _clocked(tmp_path, 'interval = "1d"', clock)
    _run_until(scheduler, queue, clock, 60)  # the day's firing
    tenant = {"busy": True}
    monkeypatch.setattr(
        scheduler_module, "busy_reason", lambda _s, _d: "device busy" if tenant["busy"] else None
    )
    scheduler.preempted(_preempted_run(1))  # type: ignore[arg-type]
    for _ in range(10):  # the tenant stays: nothing comes back
        clock.advance(max(scheduler.tick(), 0.0))
    assert len(queue.submitted) == 1
    tenant["busy"] = False
    quiet_at = clock.monotonic()
    waited = _run_until(scheduler, queue, clock, 3600)
    assert queue.submitted[-1] == ("cuda:0", "bs128")
    assert 600 <= clock.monotonic() - quiet_at <= 600 + CHAIN_POLL_SECONDS + 1e-6 and waited <= 610


def test_preemptions_beyond_the_daily_limit_are_recorded_skipped(tmp_path: Path, monkeypatch) -> None:
    from benchd.results.store import ResultsStore

    store = ResultsStore(tmp_path / "benchd.sqlite3")
    clock = SteppedClock(wall=1_700_000_000.0)
    scheduler, _queue = _recording(tmp_path, store, clock, "max_preemptions = 2", 'interval = "1d"')
    scheduler.start_schedules()
    for run_id in (1, 2, 3):
        scheduler.preempted(_preempted_run(run_id))  # type: ignore[arg-type]
    scheduler.tick()
    (skipped,) = store.list_runs(outcome="skipped")
    assert "preempted 3 times in 24 hours (limit 2)" in (skipped.message or "")
    assert len(scheduler._comebacks) == 2  # the first two wait for quiet
    store.close()
