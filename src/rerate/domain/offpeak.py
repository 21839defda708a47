"""Off-peak windows (shared/RATING.md section 5), vectorized.

A tariff has a time zone and windows such as ``mon-fri 20:00-08:00`` or
``sat,sun`` (whole days).  A range that crosses midnight belongs to the day
it starts on: ``fri 20:00-08:00`` covers Friday 20:00 to Saturday 08:00.  An
XDR is off-peak when its connect time, in the tariff's zone, falls in a
window; daylight-saving changes are exact (offsets come from the zone
database, per XDR where an hour contains a change).

A schedule compiles to sorted boundaries over the week (seconds from Monday
00:00); an XDR is inside when a binary search lands between a start and an
end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from rerate.domain.prefix_index import BoolArray, Int64Array

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 86_400
WEEK = 7 * DAY
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0)


class OffPeakError(ValueError):
    """A window or time zone that cannot be understood."""


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]  # Monday is 0
    start: int  # seconds after local midnight
    end: int  # seconds after local midnight; <= start crosses midnight; 86400 = end of day

    def as_dict(self) -> dict[str, object]:
        return {"days": list(self.days), "start": _clock(self.start), "end": _clock(self.end)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Window:
        days = data.get("days", [])
        assert isinstance(days, list)
        return cls(tuple(int(d) for d in days), _seconds(str(data["start"])), _seconds(str(data["end"])))

    def describe(self) -> str:
        names = ",".join(DAYS[d] for d in self.days)
        if self.start == 0 and self.end == DAY:
            return names
        return f"{names} {_clock(self.start)}-{_clock(self.end)}"


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise OffPeakError(f"{text!r} is not a time of day (HH:MM)")
    value = int(match.group(1)) * 3600 + int(match.group(2)) * 60
    if value > DAY:
        raise OffPeakError(f"{text!r} is after 24:00")
    return value


def _days(text: str) -> tuple[int, ...]:
    chosen: list[int] = []
    for raw in text.lower().split(","):
        part = raw.strip()
        if part in ("all", "daily", "every day"):
            chosen.extend(range(7))
            continue
        if "-" in part:
            first, last = (p.strip()[:3] for p in part.split("-", 1))
            if first not in DAYS or last not in DAYS:
                raise OffPeakError(f"{part!r} is not a day range like mon-fri")
            index = DAYS.index(first)
            while True:  # fri-mon wraps round the weekend
                chosen.append(index)
                if index == DAYS.index(last):
                    break
                index = (index + 1) % 7
            continue
        if part[:3] not in DAYS:
            raise OffPeakError(f"{part!r} is not a day (mon, tue, ..., sun)")
        chosen.append(DAYS.index(part[:3]))
    return tuple(sorted(set(chosen)))


def parse_window(spec: str) -> Window:
    """``"mon-fri 20:00-08:00"``, ``"sat,sun"``, ``"daily 00:00-07:00"``."""
    text = spec.strip()
    match = re.fullmatch(r"([A-Za-z,\- ]+?)(?:\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2}))?", text)
    if not match:
        raise OffPeakError(f"{spec!r} is not a window like 'mon-fri 20:00-08:00' or 'sat,sun'")
    days = _days(match.group(1))
    if not days:
        raise OffPeakError(f"{spec!r} names no day")
    if match.group(2) is None:
        return Window(days, 0, DAY)
    start, end = _seconds(match.group(2)), _seconds(match.group(3))
    if start == end:
        raise OffPeakError(f"{spec!r}: a window must not start and end at the same time")
    return Window(days, start, end)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OffPeakError(f"unknown time zone {name!r} (use names like Europe/London or UTC)") from exc


@dataclass(frozen=True)
class Schedule:
    """A tariff's windows compiled for lookups."""

    zone_name: str
    boundaries: Int64Array  # sorted; [start0, end0, start1, end1, ...] within the week

    @classmethod
    def compile(cls, zone_name: str, windows: Sequence[Window]) -> Schedule:
        zone(zone_name)
        intervals: list[tuple[int, int]] = []
        for window in windows:
            length = (
                (window.end - window.start) if window.end > window.start else DAY - window.start + window.end
            )
            for day in window.days:
                start = day * DAY + window.start
                end = start + length
                if end <= WEEK:
                    intervals.append((start, end))
                else:  # Sunday night into Monday morning
                    intervals.extend([(start, WEEK), (0, end - WEEK)])
        merged: list[list[int]] = []
        for start, end in sorted(intervals):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        flat = np.array([v for pair in merged for v in pair], dtype=np.int64)
        return cls(zone_name, flat)

    def contains(self, when: Int64Array) -> BoolArray:
        """Which epoch-second times fall in a window (in the schedule's zone)."""
        if len(self.boundaries) == 0 or len(when) == 0:
            return np.zeros(len(when), dtype=bool)
        local = local_seconds(when, zone(self.zone_name))
        days = local // DAY
        in_week = ((days + _EPOCH_WEEKDAY) % 7) * DAY + (local - days * DAY)
        position = np.searchsorted(self.boundaries, in_week, side="right")
        inside: BoolArray = position % 2 == 1
        return inside


def _offset(epoch: int, tz: ZoneInfo) -> int:
    delta = datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def local_seconds(when: Int64Array, tz: ZoneInfo) -> Int64Array:
    """Epoch seconds shifted to local wall-clock seconds, exact across offset changes."""
    hours = when // 3600
    unique, inverse = np.unique(hours, return_inverse=True)
    at_start = np.array([_offset(int(h) * 3600, tz) for h in unique], dtype=np.int64)
    at_end = np.array([_offset(int(h) * 3600 + 3599, tz) for h in unique], dtype=np.int64)
    offset = at_start[inverse]
    changing = np.flatnonzero((at_start != at_end)[inverse])
    if len(changing):  # an hour with a change: each XDR by itself
        offset[changing] = [_offset(int(t), tz) for t in when[changing]]
    shifted: Int64Array = when + offset
    return shifted
