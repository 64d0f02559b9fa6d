"""The scheduler in-process: a schedule on several devices runs them one after another, or at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchd.lifecycle.recording import RunRequest
from benchd.lifecycle.scheduler import Scheduler
from benchd.results.model import Origin
from benchd.server.config import load_settings


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
