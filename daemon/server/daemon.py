"""`benchd serve`: wires the store, queue, scheduler, metrics and HTTP server into one process.

Start order: open the store, rebuild the scoreboard, mark runs a previous
process left running as `interrupted` and re-queue the queued ones, probe
the devices in the background (the API reports not-ready until then), start
the scheduler, serve. SIGTERM or SIGINT: stop intake, stop the running child,
wait for its outcome to be recorded, exit 0.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from benchd import __version__
from benchd.devices import Probe, ProbeError, probe
from benchd.health.bands import BandKey, BandsError, references, shipped
from benchd.health.book import HealthBook
from benchd.health.verdict import Band, BandSource, DeviceVerdict
from benchd.hostinfo import describe_host
from benchd.lifecycle.child import HARNESS_COMMAND
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import RunQueue, recover
from benchd.lifecycle.scheduler import Scheduler
from benchd.paths import ensure_writable, store_path
from benchd.results.model import OUTCOMES, Outcome, Run
from benchd.results.store import ResultsStore
from benchd.server.connections import LISTEN_BACKLOG, RepeatFilter, connection_limits, protocol_factory
from benchd.server.hosts import HostPolicy
from benchd.server.metrics import BenchdCollector, DaemonFacts
from benchd.server.scoreboard import Scoreboard, SeriesState, Snapshot
from benchd.settings import ALL_DEVICES, Settings
from benchd.telemetry.nvml_devices import identities
from benchd.telemetry.sampler import Sampler

log = logging.getLogger("benchd")
FOLLOW_SECONDS = 10.0  # how often runs recorded by other processes are looked for
FOLLOW_OVERLAP_SECONDS = 60.0  # a run whose row was finished just before a pass began is not missed

LOCK_FILE = "daemon.lock"


class DaemonLockError(Exception):
    """Another daemon already serves this data directory."""


def _take_lock(path: Path, data_dir: Path) -> TextIO:
    handle = open(path, "a+")  # noqa: SIM115 - held open for the daemon's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise DaemonLockError(f"another benchd daemon (pid {owner}) is already serving {data_dir}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def path_lock_file(data_dir: Path) -> Path:
    """A lock outside the data directory, named by its path: it outlives a data directory deleted under the
    daemon, so a second daemon cannot start on that path (and a new, empty store) meanwhile."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"benchd-{os.getuid()}-{digest}.lock"


def _lock_data_dir(data_dir: Path) -> list[TextIO]:
    """One daemon per data directory: a second would mark the first's runs `interrupted`. Held in the data
    directory (shared with other hosts' views of a mounted volume) and by path in the temporary directory
    (where it survives the data directory); a temporary directory that cannot be written skips the latter."""
    held = []
    try:
        held.append(_take_lock(path_lock_file(data_dir), data_dir))
    except OSError as exc:
        log.warning("no lock by path in %s (%s): the data directory's own only", tempfile.gettempdir(), exc)
    try:
        held.append(_take_lock(data_dir / LOCK_FILE, data_dir))
    except BaseException:
        for handle in held:
            handle.close()
        raise
    return held


def _reference_bands(data_dir: Path) -> dict[BandKey, Band]:
    """The shipped bands and those `benchd bands add` kept; a bands file that cannot be read is logged and
    left out, never a daemon that does not start."""
    try:
        return references(data_dir)
    except BandsError as exc:
        log.error("reference bands added with `benchd bands add` are left out: %s", exc)
        return {entry.key: entry.band() for entry in shipped()}


class Daemon:
    """The running daemon's parts, and the facts the API and metrics read from it."""

    def __init__(self, settings: Settings, command: tuple[str, ...] = HARNESS_COMMAND) -> None:
        self.settings = settings
        self.token = settings.server.token
        self.default_timeout = settings.runs.timeout
        self.data_dir = settings.data_dir
        self.hosts = HostPolicy.build(settings.server.allowed_hosts)
        self.started_at = time.time()
        data_dir = ensure_writable(settings.data_dir)
        self._locks = _lock_data_dir(data_dir)
        self.store = ResultsStore(store_path(data_dir))
        self.sampler = Sampler()
        self.health = HealthBook(settings.health.policy(), {BandSource.REFERENCE: _reference_bands(data_dir)})
        self.scoreboard = Scoreboard(health=self.health)
        for run in self.store.finished_runs():
            self.scoreboard.record(run)
        self.ledger = RunLedger(self.store, self._finished)
        self.queue = RunQueue(
            self.ledger,
            queue_size=settings.runs.queue_size,
            grace=settings.runs.grace,
            command=command,
            sampler=self.sampler,
            yield_to_tenants=settings.runs.yield_to_tenants,
        )
        self.facts = DaemonFacts(
            host=describe_host(),
            schedule_periods={
                (s.workload, preset): s.period_seconds(datetime.now())
                for s in settings.schedules
                for preset in s.presets
            },
        )
        self.collector = BenchdCollector(
            self.scoreboard, self.queue, self.store, lambda: self.facts, self.sampler, self.health
        )
        self._probe: Probe | None = None
        self._probed = threading.Event()
        self._stopping = threading.Event()
        self.scheduler = Scheduler(settings, self.ledger, self.queue, self._resolve)
        self.facts.next_fire = self.scheduler.next_due

    def _finished(self, run: Run) -> None:
        """Every run that ends: counted, and, when it yielded to a tenant, handed back to its schedule."""
        self.scoreboard.record(run)
        if run.outcome == Outcome.PREEMPTED:
            self.scheduler.preempted(run)

    def start(self) -> None:
        self.sampler.start()
        interrupted = recover(self.ledger, self.queue, self.settings.data_dir)
        if interrupted:
            log.warning("marked runs %s, left running by the previous process, as interrupted", interrupted)
        threading.Thread(target=self._probe_devices, name="benchd-probe", daemon=True).start()
        threading.Thread(target=self._follow_store, name="benchd-follow", daemon=True).start()
        self.scheduler.start()

    def _follow_store(self) -> None:
        """Count runs that others recorded in this data directory: a foreground `benchd run` beside the
        daemon, or a Kubernetes Job that ran the suite with the GPU it requested (docs/deploy.md)."""
        since = time.time()
        while not self._stopping.wait(FOLLOW_SECONDS):
            if self._store_lost():
                continue
            checked = time.time()
            try:
                for run in self.store.finished_since(since - FOLLOW_OVERLAP_SECONDS):
                    self.scoreboard.record(run)
            except Exception:  # a store that cannot be read now: the next pass tries again
                log.exception("could not read runs recorded by other processes")
                continue
            since = checked

    def _store_lost(self) -> bool:
        """Whether the store file was deleted or replaced under the daemon; said once in the log."""
        already = self.store.lost is not None
        lost = self.store.check_in_place()
        if lost is not None and not already:
            log.error("%s: not ready, and no run is recorded until benchd is restarted", lost)
        return lost is not None

    def _probe_devices(self) -> None:
        try:
            result = probe()
        except ProbeError as exc:
            self.facts.probe_error = str(exc)
            log.error("device probe failed: %s", exc)
        else:
            self._probe = result
            self.facts.torch_version = result.torch_version
            self.facts.identities = identities()
            self.facts.devices = result.devices
            for schedule in self.settings.schedules:
                for configured in schedule.devices:
                    for device in self._resolve(configured) or []:
                        for preset in schedule.presets:
                            self.scoreboard.ensure_series(schedule.workload, preset, device, OUTCOMES)
        finally:
            self._probed.set()

    def _resolve(self, requested: str) -> list[str] | None:
        """A configured device as device ids: `all` is every accelerator (else the CPU); None until probed
        or when the host lacks it."""
        if self._probe is None:
            return None
        if requested == ALL_DEVICES:
            accelerators = [d["id"] for d in self._probe.devices if d["type"] != "cpu"]
            return accelerators or ["cpu"]
        try:
            return [self._probe.resolve(requested)]
        except ValueError:
            return None

    def probe(self) -> Probe | None:
        return self._probe

    def wait_probed(self, timeout: float) -> bool:
        return self._probed.wait(timeout)

    def not_ready_reason(self) -> str | None:
        if self.store.lost is not None:
            return self.store.lost
        if self._probe is None:
            return self.facts.probe_error or "devices are being probed"
        return self.queue.worker_failure()

    def status(self) -> dict[str, Any]:
        reason = self.not_ready_reason()
        board = self.scoreboard.snapshot()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": time.time() - self.started_at,
            "ready": reason is None,
            "not_ready_reason": reason,
            "devices": self.facts.devices or [],
            "torch_version": self.facts.torch_version,
            "sensors": [a.to_json() for a in self.sampler.availability],
            "queue": self.queue.queued_runs(),
            "next": self.scheduler.next_due(),  # schedule -> when it fires next (Unix time)
            "active": [a.to_json() for a in self.queue.active_runs()],
            "last": [_last(key, state, board) for key, state in sorted(board.series.items())
                     if state.last_outcome is not None],
            "health": [{"device": v.device, "state": v.state.value, "reason": v.reason()}
                       for v in self.verdicts()],
        }  # fmt: skip

    def verdicts(self) -> list[DeviceVerdict]:
        """Each device's verdict now, stale where its schedule has not run it for two periods."""
        return self.health.verdicts(time.time(), self.facts.schedule_periods)

    def stop(self) -> None:
        self._stopping.set()
        self.scheduler.stop()
        self.queue.shutdown(self.settings.runs.grace + 30)
        self.sampler.stop()
        self.store.close()
        for handle in self._locks:
            handle.close()


TICKS_PER_SECOND = 10  # uvicorn's on_tick counts tenths of a second


class _Server(uvicorn.Server):
    """Uvicorn, with our shutdown started by the same signal that stops it."""

    def __init__(self, config: uvicorn.Config, daemon: Daemon) -> None:
        super().__init__(config)
        self.daemon = daemon

    async def main_loop(self) -> None:
        """Uvicorn's loop, ticking once a second rather than ten times. Its tick updates the Date header,
        which changes once a second, and looks for a stop: an idle daemon's ten wake-ups a second were
        most of its CPU (docs/performance.md), and a stop now starts within a second."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + TICKS_PER_SECOND) % 864_000  # on_tick refreshes the date at multiples of 10
            await asyncio.sleep(1.0)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            log.info("signal %d: stopping intake and the run in progress", sig)
            threading.Thread(target=self.daemon.queue.shutdown, args=(0,), daemon=True).start()
        super().handle_exit(sig, frame)


def _ignore_signal(_signum: int, _frame: Any) -> None:
    """Uvicorn re-raises the stop signal after a clean shutdown; we have already handled it."""


class ListenError(Exception):
    """The address cannot be listened on (in use, not this host's, not permitted)."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, made before anything starts, so a busy port fails `serve` at once."""
    try:
        family, _type, _proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted
        # sockets that say they are TCP. Without it a kept-alive connection's response (headers, then body)
        # waited for the client's delayed ACK: 44 ms a scrape, where Prometheus keeps connections alive.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not a port another socket listens on
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)  # uvicorn listens again with the same backlog
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(settings: Settings, command: tuple[str, ...] = HARNESS_COMMAND) -> int:
    import signal

    from benchd.server.api import create_app

    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    limits = connection_limits()
    sock = listen(settings.server.host, settings.server.port)
    port = sock.getsockname()[1]
    daemon = Daemon(settings, command)
    daemon.start()
    config = uvicorn.Config(
        create_app(daemon),
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        http=protocol_factory(limits),
        backlog=LISTEN_BACKLOG,
    )
    # After uvicorn.Config, which gives uvicorn's loggers handlers of their own (malformed requests are
    # logged there): every handler says a repeated line once a minute.
    for name in ("", "uvicorn", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(RepeatFilter())
    server = _Server(config, daemon)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore_signal)
    log.info("benchd %s serving on http://%s:%d (data in %s; at most %d connections)", __version__,
             settings.server.host, port, settings.data_dir, limits.max_connections)  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        daemon.stop()
        sock.close()
    return 0 if server.started else 1


def _last(key: tuple[str, str, str], state: SeriesState, board: Snapshot) -> dict[str, Any]:
    """A series' last outcome, and the figures of its last ok run (whose config says what they are)."""
    workload, preset, device = key
    result = board.results.get((*key, state.last_config)) if state.last_config else None
    repeats = result.repeats() if result else None
    contended = (
        board.results.get((*key, state.last_contended_config)) if state.last_contended_config else None
    )
    return {
        "workload": workload,
        "preset": preset,
        "device": device,
        "outcome": state.last_outcome,
        "contended": state.last_contended,  # the last run ended ok, beside foreign load
        # Why a series may have no clean figure: its ok runs measured beside foreign load, and the last one.
        "contended_runs": board.contended.get(key, 0),
        "contended_epoch_seconds": contended.contended_epoch_seconds if contended else None,
        "contention": contended.contention if contended else None,
        "finished_at": state.last_finished_at,
        "success_at": state.last_success_at,
        "config": state.last_config,
        "epoch_seconds": result.epoch_seconds if result else None,
        "samples_per_second": result.samples_per_second if result else None,
        "sample_unit": result.sample_unit if result else None,
        "fraction": result.fraction if result else None,
        "mfu_ratio": result.compute.get("mfu_ratio") if result else None,
        "variation_ratio": repeats.cv if repeats else None,  # over the config's recent ok runs
        "unstable": repeats.unstable if repeats else None,
    }
