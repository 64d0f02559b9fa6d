"""The one way a run's end is recorded: in the store, then told to whoever follows finished runs.

The queue, the scheduler's skipped runs and restart recovery all end runs;
each goes through a RunLedger, so a finished run is written once, read back
once, and reaches the scoreboard (and so the metrics) exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

from benchd.results.model import Outcome, Run
from benchd.results.store import ResultsStore

FinishedCallback = Callable[[Run], None]


class RunLedger:
    def __init__(self, store: ResultsStore, on_finished: FinishedCallback) -> None:
        self.store = store
        self._on_finished = on_finished

    def finish(self, run_id: int, outcome: Outcome, message: str | None = None) -> Run | None:
        """End a run that never reached a child (cancelled while queued, skipped, interrupted)."""
        self.store.finish(run_id, outcome, message=message)
        return self.announce(run_id)

    def announce(self, run_id: int) -> Run | None:
        """Read back a run that has ended and pass it on; None if it is not in the store."""
        run = self.store.get_run(run_id)
        if run is not None:
            self._on_finished(run)
        return run
