"""Per-partition count kernels on integer codes.

Each function returns *exactly* the frame of a pandas reference kernel (same columns,
dtypes and rows; row order aside, which the reduction does not depend on):

- :func:`visit_user_counts` = ``visits.visit_user_counts(visits.visit_pairs(...))``
- :func:`visit_profile_counts` = ``profiles.visit_profile_counts(visits.visit_pairs(...))``
- :func:`interaction_profile_counts` = ``profiles.interaction_profile_counts(...)``

The rules themselves (the grid index and its strict radius, local month / weekday /
period of day, the ad's category) come from the same functions as in the reference; only
the counting differs: keys become integer codes and are counted by sorting their
mixed-radix combination, instead of building a frame of the pairs and grouping it by
id strings. The pandas engine does the same in its single-process ``visits``; on Dask
this keeps the per-partition partial results (what the workers exchange) small and
cheap. ``tests/test_dask_engine.py`` checks the equality on random data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import profiles as _prof
from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas import visits as _visits
from adanalytics.engines.pandas.joins import positions
from adanalytics.semantics import PERIOD_NAMES, PERIOD_OF_HOUR

#: local hour -> period code (index in PERIOD_NAMES)
_PERIOD_CODE = np.array([PERIOD_NAMES.index(p) for p in PERIOD_OF_HOUR], dtype=np.int64)
_PERIOD_LABELS = np.array(PERIOD_NAMES, dtype=object)
_WEEKDAY_LABELS = np.arange(7, dtype=np.int64)


def count_keys(keys: list[tuple[str, np.ndarray, np.ndarray]], name: str) -> pd.DataFrame | None:
    """Distinct key combinations and their counts.

    ``keys``: (column, codes in ``[0, len(labels))``, labels) per key column; a code -1
    (a missing value) drops the row, as a pandas ``groupby`` does. Returns the columns
    ``labels[code]`` plus ``name`` (int64), or None when the codes' combination would
    not fit in 63 bits (the caller then counts another way).
    """
    missing = np.zeros(len(keys[0][1]), dtype=bool)
    for _, codes, _ in keys:
        missing |= codes < 0
    if missing.any():
        keys = [(col, codes[~missing], labels) for col, codes, labels in keys]
    radix = 1
    for _, _, labels in keys:
        radix *= max(len(labels), 1)
        if radix >= 2**62:
            return None
    combined = np.zeros(len(keys[0][1]), dtype=np.int64)
    for _, codes, labels in keys:
        combined *= max(len(labels), 1)
        combined += codes
    combined.sort()
    first = np.flatnonzero(np.concatenate(([True], combined[1:] != combined[:-1])))
    counts = np.diff(np.append(first, len(combined))).astype(np.int64)
    uniq = combined.take(first)
    cols: dict[str, np.ndarray] = {}
    for col, _, labels in reversed(keys):
        n = max(len(labels), 1)
        cols[col] = labels.take(uniq % n)
        uniq = uniq // n
    out = {col: cols[col] for col, _, _ in keys}
    out[name] = counts
    return pd.DataFrame(out, copy=False)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def visit_user_counts(locations: pd.DataFrame, places: _visits.PlaceIndex, *, by: str,
                      tz: str) -> pd.DataFrame:
    """Kernel: visits per (establishment, [month], user) of a partition of locations."""
    qi, pi, _ = places.cells.within(locations["lat"].to_numpy(np.float64),
                                    locations["lon"].to_numpy(np.float64))
    if len(qi) == 0:
        return _visits.visit_user_counts(_visits.visit_pairs(locations.iloc[:0], places),
                                         by=by, tz=tz)
    keys = [("establishment_id", pi, places.establishment_id)]
    if by == "month":
        codes, names = _visits._month_codes(locations["ts"].array.take(qi), tz)
        keys.append(("month", codes, names))
    keys.append(("user_id", *_factorize(locations["user_id"].to_numpy().take(qi))))
    out = count_keys(keys, "visits")
    if out is None:
        return _visits.visit_user_counts(_visits.visit_pairs(locations, places), by=by, tz=tz)
    return out


def visit_profile_counts(locations: pd.DataFrame, places: _visits.PlaceIndex, *,
                         tz: str) -> pd.DataFrame:
    """Kernel: visits per (user, local weekday, establishment category) of a partition."""
    qi, pi, _ = places.cells.within(locations["lat"].to_numpy(np.float64),
                                    locations["lon"].to_numpy(np.float64))
    if len(qi) == 0:
        return _prof.visit_profile_counts(_visits.visit_pairs(locations.iloc[:0], places), tz=tz)
    weekday = tb.weekday(tb.local(pd.Series(locations["ts"].array.take(qi)), tz)).to_numpy()
    cat_code, cats = _factorize(places.category)
    out = count_keys([
        ("user_id", *_factorize(locations["user_id"].to_numpy().take(qi))),
        ("weekday", weekday.astype(np.int64, copy=False), _WEEKDAY_LABELS),
        ("category", cat_code.take(pi), cats.astype(object)),
    ], "visits")
    if out is None:
        return _prof.visit_profile_counts(_visits.visit_pairs(locations, places), tz=tz)
    return out


def interaction_profile_counts(interactions: pd.DataFrame, ads: pd.DataFrame, *,
                               tz: str) -> pd.DataFrame:
    """Kernel: interactions per (user, period of the day, ad category) of a partition."""
    if interactions.empty:
        return _prof.interaction_profile_counts(interactions, ads, tz=tz)
    hour = tb.local(interactions["ts"], tz).dt.hour.to_numpy()
    cat_code, cats = _factorize(ads["category"].to_numpy(dtype=object))
    ad_pos = positions(ads["ad_id"], interactions["ad_id"])
    out = count_keys([
        ("user_id", *_factorize(interactions["user_id"].to_numpy())),
        ("period", _PERIOD_CODE.take(hour), _PERIOD_LABELS),
        ("category", cat_code.take(ad_pos), cats.astype(object)),
    ], "interactions")
    if out is None:
        return _prof.interaction_profile_counts(interactions, ads, tz=tz)
    return out
