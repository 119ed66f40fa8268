"""Question 2: visits to establishments (SPEC §3.2) - and the visit pairs that questions
3 and 6 build on.

The 50 m rule itself is ``semantics.VISIT_RADIUS_M``; proximity is found through the grid
index of :mod:`adanalytics.geo` (no record is compared with every establishment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.geo import CellIndex, build_index
from adanalytics.semantics import output_columns, output_keys

#: Optional column of a locations frame: the record's user as an integer code in
#: ``[0, users of the frame)``, equal for equal ``user_id`` within the frame (the Dask
#: engine's ``persist()`` stores it beside each partition). :func:`visit_totals` then
#: counts distinct visitors on it instead of hashing the id strings.
USER_CODE = "_user"


@dataclass(frozen=True)
class PlaceIndex:
    """Establishments indexed for "closer than radius" look-ups (broadcast to workers)."""

    cells: CellIndex
    establishment_id: np.ndarray
    category: np.ndarray

    @property
    def radius_m(self) -> float:
        return self.cells.spec.radius_m


def place_index(establishments: pd.DataFrame, radius_m: float) -> PlaceIndex:
    """Index ``establishments`` (validated frame) for a search radius."""
    cells = build_index(
        establishments["lat"].to_numpy(np.float64),
        establishments["lon"].to_numpy(np.float64),
        radius_m,
    )
    return PlaceIndex(
        cells=cells,
        establishment_id=establishments["establishment_id"].to_numpy(),
        category=establishments["category"].to_numpy(dtype=object),
    )


def visit_pairs(locations: pd.DataFrame, places: PlaceIndex,
                radius_m: float | None = None) -> pd.DataFrame:
    """Kernel: every (location record, establishment) pair closer than the radius.

    Columns: user_id, ts, establishment_id, category (the establishment's), distance_m.
    A record near several establishments yields one row per establishment.
    """
    qi, pi, d = places.cells.within(
        locations["lat"].to_numpy(np.float64), locations["lon"].to_numpy(np.float64), radius_m
    )
    # copy=False: no consolidation of the object columns into one block (a full copy)
    return pd.DataFrame({
        "user_id": locations["user_id"].to_numpy().take(qi),
        "ts": locations["ts"].array.take(qi),
        "establishment_id": places.establishment_id.take(pi),
        "category": places.category.take(pi),
        "distance_m": d,
    }, copy=False)


def visit_user_counts(pairs: pd.DataFrame, *, by: str, tz: str) -> pd.DataFrame:
    """Kernel: visits per (establishment, [month], user) - summable across partitions."""
    keys = ["establishment_id"] + (["month"] if by == "month" else [])
    df = pairs[["establishment_id", "user_id"]]
    if by == "month":
        df = df.assign(month=tb.month(tb.local(pairs["ts"], tz)))
    cols = [*keys, "user_id"]
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=df[c].dtype) for c in cols} | {"visits": pd.Series(dtype=np.int64)})
    return df.groupby(cols, sort=False).size().rename("visits").reset_index()


def visits_finalize(user_counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    """visits = sum, visitors = distinct users, per establishment [and month]."""
    keys = ["establishment_id"] + (["month"] if by == "month" else [])
    if user_counts.empty:
        out = pd.DataFrame({c: pd.Series(dtype=user_counts[c].dtype) for c in keys})
        out["visits"] = pd.Series(dtype=np.int64)
        out["visitors"] = pd.Series(dtype=np.int64)
        return out[output_columns("visits", by)]
    out = user_counts.groupby(keys, sort=False).agg(
        visits=("visits", "sum"), visitors=("user_id", "size")
    ).reset_index()
    out["visits"] = out["visits"].astype(np.int64)
    out["visitors"] = out["visitors"].astype(np.int64)
    return sort_output(out[output_columns("visits", by)], output_keys("visits", by))


def visits(locations: pd.DataFrame, establishments: pd.DataFrame, *, by: str, tz: str,
           radius_m: float) -> pd.DataFrame:
    """Visits and distinct visitors of every establishment with at least one visit."""
    totals = visit_totals(locations, place_index(establishments, radius_m), by=by, tz=tz)
    return sort_output(totals, output_keys("visits", by))


def visit_totals(locations: pd.DataFrame, places: PlaceIndex, *, by: str,
                 tz: str) -> pd.DataFrame:
    """Kernel: visits and distinct visitors per establishment [and month] of
    ``locations`` (rows in no particular order).

    The same numbers as ``visits_finalize(visit_user_counts(visit_pairs(...)))``, counted
    on integer codes: the establishment's position in the index, the user's code among
    the visiting records (or the stored :data:`USER_CODE`) and the month's code - no pair
    frame. Totals of frames that share no user add up (the Dask engine's tables laid out
    by user).
    """
    qi, pi, _ = places.cells.within(
        locations["lat"].to_numpy(np.float64), locations["lon"].to_numpy(np.float64)
    )
    if len(qi) == 0:  # the kernels know the empty frame's types
        pairs = visit_pairs(locations.iloc[:0], places)
        return visits_finalize(visit_user_counts(pairs, by=by, tz=tz), by=by)
    if USER_CODE in locations.columns:  # stored codes: no hash of the id strings
        user_code = locations[USER_CODE].to_numpy(np.int64).take(qi)
        n_users = int(user_code.max()) + 1
    else:
        user_code, users = pd.factorize(locations["user_id"].to_numpy().take(qi))
        n_users = len(users)
    n_months = 1
    group = pi  # establishment [x month]
    if by == "month":
        month_code, month_names = _month_codes(locations["ts"].array.take(qi), tz)
        n_months = len(month_names)
        group = pi * n_months + month_code
    n_groups = len(places.establishment_id) * n_months
    if n_groups * n_users >= 2**62:  # codes would overflow: count with the kernels
        pairs = visit_pairs(locations, places)
        return visits_finalize(visit_user_counts(pairs, by=by, tz=tz), by=by)
    n_visits = np.bincount(group, minlength=n_groups)
    # distinct (group, user) codes through pandas' hash table: 25-29 ms for 1.5M visits,
    # against 45-93 ms to sort them and drop repeats (numpy 2's np.unique is slower still)
    pair = pd.unique(group * n_users + user_code)
    n_visitors = np.bincount(pair // n_users, minlength=n_groups)
    g = np.flatnonzero(n_visits)
    out = {"establishment_id": places.establishment_id.take(g // n_months)}
    if by == "month":
        out["month"] = month_names.take(g % n_months)
    out["visits"] = n_visits.take(g).astype(np.int64)
    out["visitors"] = n_visitors.take(g).astype(np.int64)
    return pd.DataFrame(out)[output_columns("visits", by)]


def _month_codes(ts: pd.api.extensions.ExtensionArray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(code of each instant's local month, month names in order), the names written by
    :func:`timebuckets.month` (from one instant of each month)."""
    local = tb.local(pd.Series(ts), tz)
    serial = local.dt.year.to_numpy(np.int64) * 12 + local.dt.month.to_numpy(np.int64)
    serial -= serial.min()
    present = np.flatnonzero(np.bincount(serial))  # months with an instant, in order
    lut = np.zeros(int(present[-1]) + 1, dtype=np.int64)
    lut[present] = np.arange(len(present))
    first = [int(np.argmax(serial == m)) for m in present]
    return lut.take(serial), tb.month(local.iloc[first]).to_numpy(dtype=object)
