"""Per-partition count kernels on integer codes.

Each function returns *exactly* the frame of a pandas reference kernel (same columns,
dtypes and rows; row order aside, which the reduction does not depend on):

- :func:`visit_user_counts` = ``visits.visit_user_counts(visits.visit_pairs(...))``
- :func:`visit_profile_counts` = ``profiles.visit_profile_counts(visits.visit_pairs(...))``
- :func:`interaction_profile_counts` = ``profiles.interaction_profile_counts(...)``

and, on a partition that holds every record of its users (tables laid out by user), the
finished, sorted profile of those users:

- :func:`visit_profile_of_users` = ``profiles.visit_profile(...)`` (or ``preferred``)
- :func:`interaction_profile_of_users` = ``profiles.interaction_profile(...)`` (or
  ``preferred``)

The rules themselves (the grid index and its strict radius, local month / weekday /
period of day, the ad's category) come from the same functions as in the reference; only
the counting differs: keys become integer codes and are counted by sorting their
mixed-radix combination, instead of building a frame of the pairs and grouping it by
id strings (the shares and preferred categories are then read off the sorted counts).
The pandas engine does the same in its single-process ``visits``; on Dask this keeps the
per-partition partial results (what the workers exchange) small and cheap. ``tests/test_dask_engine.py`` checks the equality on random data.
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


Key = tuple[str, np.ndarray, np.ndarray]  # (column, codes, labels)


def _combine(keys: list[Key]) -> tuple[np.ndarray, np.ndarray, list[Key]] | None:
    """(distinct combinations of the key codes in ascending order, their counts, the keys
    without the rows that have a missing code), or None when the combination would not
    fit in 63 bits."""
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
    return combined.take(first), counts, keys


def _decode(uniq: np.ndarray, keys: list[Key]) -> dict[str, np.ndarray]:
    """The label columns of combined codes, in the keys' order."""
    cols: dict[str, np.ndarray] = {}
    for col, _, labels in reversed(keys):
        n = max(len(labels), 1)
        cols[col] = labels.take(uniq % n)
        uniq = uniq // n
    return {col: cols[col] for col, _, _ in keys}


def count_keys(keys: list[Key], name: str) -> pd.DataFrame | None:
    """Distinct key combinations and their counts.

    ``keys``: (column, codes in ``[0, len(labels))``, labels) per key column; a code -1
    (a missing value) drops the row, as a pandas ``groupby`` does. Returns the columns
    ``labels[code]`` plus ``name`` (int64), or None when the codes' combination would
    not fit in 63 bits (the caller then counts another way). The rows come in the order
    of the codes.
    """
    combined = _combine(keys)
    if combined is None:
        return None
    uniq, counts, keys = combined
    out = _decode(uniq, keys)
    out[name] = counts
    return pd.DataFrame(out, copy=False)


def profile_keys(keys: list[Key], name: str, *, preferred: bool) -> pd.DataFrame | None:
    """``profiles.profile_finalize`` (then ``profiles.preferred`` if ``preferred``) of
    the counts of (user, slot, category) ``keys`` that hold *every* event of their users,
    computed on the codes; None as :func:`count_keys`.

    The codes must rank their labels in the output order (users and categories in
    sorted order, slots in the order of ``semantics``): the counted combinations then
    come out sorted as ``sort_output`` sorts, each (user, slot) in one run, its
    categories ascending. The share is the count over its run's total; the preferred
    row of a run is its first with the run's largest count - the smallest category
    among the most frequent (``semantics.TIE_BREAK``).
    """
    combined = _combine(keys)
    if combined is None:
        return None
    uniq, counts, keys = combined
    _, _, categories = keys[2]  # the last key: a row's (user, slot) is its code // this
    slot = uniq // max(len(categories), 1)  # ascending
    starts = np.flatnonzero(np.concatenate(([True], slot[1:] != slot[:-1])))
    sizes = np.diff(np.append(starts, len(uniq)))
    total = np.repeat(np.add.reduceat(counts, starts), sizes)
    if preferred:
        top = counts == np.repeat(np.maximum.reduceat(counts, starts), sizes)
        rows = np.flatnonzero(top)
        run = slot.take(rows)
        rows = rows[np.concatenate(([True], run[1:] != run[:-1]))]  # the first top row
        uniq, counts, total = uniq.take(rows), counts.take(rows), total.take(rows)
    out = _decode(uniq, keys)
    out[name] = counts
    out["share"] = counts / total
    return pd.DataFrame(out, copy=False)


def _factorize(values: np.ndarray, ordered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(int64 codes, labels) of ``values``; ``ordered``: codes in the labels' sort order."""
    codes, uniques = pd.factorize(values, sort=ordered)
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


def _visit_profile_keys(locations: pd.DataFrame, places: _visits.PlaceIndex, tz: str,
                        ordered: bool) -> list[Key] | None:
    """(user, local weekday, establishment category) of every visit pair (None: no pair)."""
    qi, pi, _ = places.cells.within(locations["lat"].to_numpy(np.float64),
                                    locations["lon"].to_numpy(np.float64))
    if len(qi) == 0:
        return None
    weekday = tb.weekday(tb.local(pd.Series(locations["ts"].array.take(qi)), tz)).to_numpy()
    cat_code, cats = _factorize(places.category, ordered)
    return [
        ("user_id", *_factorize(locations["user_id"].to_numpy().take(qi), ordered)),
        ("weekday", weekday.astype(np.int64, copy=False), _WEEKDAY_LABELS),
        ("category", cat_code.take(pi), cats.astype(object)),
    ]


def visit_profile_counts(locations: pd.DataFrame, places: _visits.PlaceIndex, *,
                         tz: str) -> pd.DataFrame:
    """Kernel: visits per (user, local weekday, establishment category) of a partition."""
    keys = _visit_profile_keys(locations, places, tz, ordered=False)
    out = None if keys is None else count_keys(keys, "visits")
    if out is None:
        pairs = _visits.visit_pairs(locations.iloc[:0] if keys is None else locations, places)
        return _prof.visit_profile_counts(pairs, tz=tz)
    return out


def visit_profile_of_users(locations: pd.DataFrame, places: _visits.PlaceIndex, *, tz: str,
                           preferred: bool = False) -> pd.DataFrame:
    """Kernel: the visit profile (or preferred categories) of the users of ``locations``,
    which holds every record of its users; rows sorted as the reference sorts them."""
    keys = _visit_profile_keys(locations, places, tz, ordered=True)
    out = None if keys is None else profile_keys(keys, "visits", preferred=preferred)
    if out is None:
        pairs = _visits.visit_pairs(locations.iloc[:0] if keys is None else locations, places)
        prof = _prof.profile_finalize(_prof.visit_profile_counts(pairs, tz=tz), "visit_profile")
        return _prof.preferred(prof, "preferred_establishment_category") if preferred else prof
    return out


def _interaction_profile_keys(interactions: pd.DataFrame, ads: pd.DataFrame, tz: str,
                              ordered: bool) -> list[Key] | None:
    """(user, local period of the day, ad category) of every interaction (None: none)."""
    if interactions.empty:
        return None
    hour = tb.local(interactions["ts"], tz).dt.hour.to_numpy()
    cat_code, cats = _factorize(ads["category"].to_numpy(dtype=object), ordered)
    ad_pos = positions(ads["ad_id"], interactions["ad_id"])
    return [
        ("user_id", *_factorize(interactions["user_id"].to_numpy(), ordered)),
        ("period", _PERIOD_CODE.take(hour), _PERIOD_LABELS),
        ("category", cat_code.take(ad_pos), cats.astype(object)),
    ]


def interaction_profile_counts(interactions: pd.DataFrame, ads: pd.DataFrame, *,
                               tz: str) -> pd.DataFrame:
    """Kernel: interactions per (user, period of the day, ad category) of a partition."""
    keys = _interaction_profile_keys(interactions, ads, tz, ordered=False)
    out = None if keys is None else count_keys(keys, "interactions")
    return _prof.interaction_profile_counts(interactions, ads, tz=tz) if out is None else out


def interaction_profile_of_users(interactions: pd.DataFrame, ads: pd.DataFrame, *, tz: str,
                                 preferred: bool = False) -> pd.DataFrame:
    """Kernel: the interaction profile (or preferred categories) of the users of
    ``interactions``, which holds every event of its users; rows sorted as the reference
    sorts them."""
    keys = _interaction_profile_keys(interactions, ads, tz, ordered=True)
    out = None if keys is None else profile_keys(keys, "interactions", preferred=preferred)
    if out is None:
        prof = _prof.interaction_profile(interactions, ads, tz=tz)
        return _prof.preferred(prof, "preferred_ad_category") if preferred else prof
    return out
