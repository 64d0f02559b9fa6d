"""Five-field cron expressions (minute hour day-of-month month day-of-week), in local time.

Supports `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists. As
in cron, when both day fields are restricted a day matching either is due;
day-of-week 0 and 7 are both Sunday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_SEARCH_LIMIT = timedelta(days=366 * 5)


class CronError(ValueError):
    """An expression that is not valid cron."""


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 fires in leap years


def _integer(text: str) -> int:
    """ASCII digits only: int() would take '٣' or '³' (and spaces), which no cron accepts."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        try:
            step = _integer(step_text) if step_text else 1
            if span == "*":
                start, stop = low, high
            elif "-" in span:
                first, last = span.split("-", 1)
                start, stop = _integer(first), _integer(last)
            else:
                start = _integer(span)
                stop = high if step_text else start
        except ValueError:
            raise CronError(f"{name} field {text!r} is not a number, range or step") from None
        if step < 1 or not low <= start <= stop <= high:
            raise CronError(f"{name} field {text!r} is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        fields = text.split()
        if len(fields) != len(_FIELDS):
            raise CronError(
                f"{text!r} has {len(fields)} fields; cron needs 5 (minute hour day month weekday)"
            )
        minutes, hours, days, months, cron_weekdays = (
            _parse_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)
        )
        weekdays = frozenset((d - 1) % 7 for d in cron_weekdays)  # cron Sunday 0/7 -> 6
        days_restricted, weekdays_restricted = fields[2] != "*", fields[4] != "*"
        if (
            days_restricted
            and not weekdays_restricted
            and not any(day <= _MONTH_DAYS[month - 1] for month in months for day in days)
        ):
            raise CronError(f"{text!r} never fires: none of its months has any of its days")
        return cls(text, minutes, hours, days, months, weekdays, days_restricted, weekdays_restricted)

    def _day_matches(self, moment: datetime) -> bool:
        in_days = moment.day in self.days
        in_weekdays = moment.weekday() in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first due minute strictly after `moment`."""
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + _SEARCH_LIMIT
        while candidate <= limit:
            if candidate.month not in self.months:
                year, month = divmod(candidate.month, 12)
                candidate = candidate.replace(
                    year=candidate.year + year, month=month + 1, day=1, hour=0, minute=0
                )
            elif not self._day_matches(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0)
            elif candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0)
            elif candidate.minute not in self.minutes:
                candidate += timedelta(minutes=1)
            else:
                return candidate
        raise CronError(f"{self.text!r} never fires")

    def typical_interval(self, moment: datetime) -> float:
        """Seconds between the next two firings: what a staleness alert should allow for."""
        first = self.next_after(moment)
        return (self.next_after(first) - first).total_seconds()
