"""The generated period in local time, and its exact mapping to UTC instants.

The generator thinks in local wall-clock seconds since local midnight of the first day
(so "a cafe at 08:00" is simply 8 * 3600 on some day). Converting to UTC uses the UTC
offset of each local day at noon; the month a record is filed under is computed from its
UTC instant against the exact UTC instants of local month starts, so partitions agree
with what any reader computes in ``tz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY_S = 86_400


@dataclass(frozen=True)
class Timeline:
    """The period ``[start, end)`` in local time of ``tz``.

    Attributes
    ----------
    tz:
        IANA time zone.
    start, end:
        Local midnights (naive) of the first day and of the day after the period.
    n_days:
        Number of local days.
    base_s:
        Epoch seconds of ``start`` read as if it were UTC (wall-clock epoch).
    day_offset_s:
        UTC offset (seconds, local - UTC) of every local day at noon.
    weekday0:
        Weekday of the first day (0 = Monday).
    months:
        ``YYYY-MM`` label of every (partial) month of the period.
    month_bounds_us:
        UTC microseconds of the local start of every month and of ``end`` (len + 1).
    month_first_day:
        Local day index at which every month starts, and ``n_days`` (len + 1).
    """

    tz: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_days: int
    base_s: int
    day_offset_s: np.ndarray
    weekday0: int
    months: tuple[str, ...]
    month_bounds_us: np.ndarray
    month_first_day: np.ndarray

    @classmethod
    def build(cls, start: str, months: int, tz: str) -> Timeline:
        """The timeline of ``months`` months from local date ``start`` in ``tz``."""
        t0 = pd.Timestamp(start).normalize()
        if t0.tzinfo is not None:
            t0 = t0.tz_localize(None)
        t1 = t0 + pd.DateOffset(months=months)
        n_days = int((t1 - t0) / pd.Timedelta(days=1))
        days = pd.date_range(t0, periods=n_days, freq="D")
        noon = (days + pd.Timedelta(hours=12)).tz_localize(
            tz, ambiguous=False, nonexistent="shift_forward"
        )
        offset = (noon.tz_localize(None) - noon.tz_convert("UTC").tz_localize(None)).to_numpy()
        day_offset_s = (offset // np.timedelta64(1, "s")).astype(np.int64)

        bounds = [t0]
        labels = [t0.strftime("%Y-%m")]
        while True:
            nxt = (bounds[-1] + pd.offsets.MonthBegin(1)).normalize()
            if nxt >= t1:
                break
            bounds.append(nxt)
            labels.append(nxt.strftime("%Y-%m"))
        bounds.append(t1)
        local = pd.DatetimeIndex(bounds).tz_localize(
            tz, ambiguous=False, nonexistent="shift_forward"
        )
        bounds_us = (local.tz_convert("UTC").tz_localize(None).as_unit("us").asi8).astype(np.int64)
        first_day = np.array([(b - t0).days for b in bounds], dtype=np.int64)
        base_s = int((t0 - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1))
        return cls(
            tz=tz,
            start=t0,
            end=t1,
            n_days=n_days,
            base_s=base_s,
            day_offset_s=day_offset_s,
            weekday0=int(t0.weekday()),
            months=tuple(labels),
            month_bounds_us=bounds_us,
            month_first_day=first_day,
        )

    @property
    def span_s(self) -> float:
        """Length of the period in local seconds."""
        return float(self.n_days * DAY_S)

    def day_of(self, t_loc: np.ndarray) -> np.ndarray:
        """Local day index of local times (clipped into the period)."""
        return np.clip((t_loc // DAY_S).astype(np.int64), 0, self.n_days - 1)

    def weekday_of_day(self, day: np.ndarray) -> np.ndarray:
        """Weekday (0 = Monday) of local day indices."""
        return (day + self.weekday0) % 7

    @staticmethod
    def hour_of(t_loc: np.ndarray) -> np.ndarray:
        """Local hour 0-23 of local times."""
        return ((t_loc % DAY_S) // 3600).astype(np.int64)

    def to_utc_us(self, t_loc: np.ndarray) -> np.ndarray:
        """UTC epoch microseconds (millisecond resolution) of local times."""
        off = self.day_offset_s[self.day_of(t_loc)]
        ms = np.round((t_loc + (self.base_s - off)) * 1000.0).astype(np.int64)
        return ms * 1000

    def month_index(self, ts_us: np.ndarray) -> np.ndarray:
        """Index into ``months`` of UTC instants (-1 / len(months) outside the period)."""
        return np.searchsorted(self.month_bounds_us, ts_us, side="right") - 1

    def in_period(self, ts_us: np.ndarray) -> np.ndarray:
        """Whether UTC instants fall in ``[start, end)`` local time."""
        return (ts_us >= self.month_bounds_us[0]) & (ts_us < self.month_bounds_us[-1])

    def date_of_day(self, day: np.ndarray) -> np.ndarray:
        """numpy ``datetime64[D]`` of local day indices."""
        return np.datetime64(self.start.date(), "D") + np.asarray(day, dtype=np.int64)
