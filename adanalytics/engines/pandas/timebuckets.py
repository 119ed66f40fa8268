"""Calendar buckets of instants in the dataset's local time zone (SPEC §3 "Common")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.semantics import PERIOD_OF_HOUR

_PERIODS = np.array(PERIOD_OF_HOUR, dtype=object)


def local(ts: pd.Series, tz: str) -> pd.Series:
    """UTC instants -> wall-clock time in ``tz``."""
    return ts.dt.tz_convert(tz)


def month(local_ts: pd.Series) -> pd.Series:
    """``YYYY-MM`` of local times (strings)."""
    if len(local_ts) == 0:
        return pd.Series([], index=local_ts.index, dtype=object)
    code = local_ts.dt.year.to_numpy() * 100 + local_ts.dt.month.to_numpy()
    uniq, inv = np.unique(code, return_inverse=True)
    names = np.array([f"{c // 100:04d}-{c % 100:02d}" for c in uniq], dtype=object)
    return pd.Series(names[inv], index=local_ts.index, dtype=object)


def hour(local_ts: pd.Series) -> pd.Series:
    """Local hour 0-23 (int64)."""
    return local_ts.dt.hour.astype(np.int64)


def period(local_ts: pd.Series) -> pd.Series:
    """Period of the day (``night``/``morning``/``afternoon``/``evening``) of local times."""
    return pd.Series(_PERIODS[local_ts.dt.hour.to_numpy()], index=local_ts.index, dtype=object)


def weekday(local_ts: pd.Series) -> pd.Series:
    """Local weekday, 0 = Monday ... 6 = Sunday (int64)."""
    return local_ts.dt.weekday.astype(np.int64)


def local_date(local_ts: pd.Series) -> pd.Series:
    """Local calendar date as midnight ``datetime64[ns]`` (naive)."""
    return local_ts.dt.tz_localize(None).dt.normalize()


def epoch_ns(ts: pd.Series) -> np.ndarray:
    """UTC instants as int64 nanoseconds since the epoch."""
    return np.asarray(ts.array.asi8 if hasattr(ts.array, "asi8") else ts.astype("int64"), dtype=np.int64)
