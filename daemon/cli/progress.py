"""Progress bars on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchd import protocol


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


class RunProgress:
    """One bar per epoch, fed by the child's events."""

    def __init__(self, label: str, epochs: int) -> None:
        self.label = label
        self.epochs = epochs
        self.bar = progress_bars()
        self.task: Any = None
        self.steps: int | None = None  # known once the child reports `started`

    def __enter__(self) -> RunProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(f"{self.label}: starting", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, traceback)

    def on_event(self, event: protocol.Event) -> None:
        if event["event"] == protocol.STARTED:
            self.steps = event["steps_per_epoch"]
            self.bar.update(
                self.task, description=f"{self.label} on {event['device_name']}", total=1, completed=1
            )
        elif event["event"] == protocol.EPOCH_START:
            description = f"{self.label} epoch {event['epoch'] + 1}/{self.epochs}"
            self.task = self.bar.add_task(description, total=self.steps)
        elif event["event"] == protocol.PROGRESS:
            self.bar.update(self.task, completed=event["step"])
        elif event["event"] == protocol.EPOCH_END:
            self.bar.update(self.task, completed=event["steps"])
