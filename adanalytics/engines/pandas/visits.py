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
    return pd.DataFrame({
        "user_id": locations["user_id"].to_numpy()[qi],
        "ts": locations["ts"].array.take(qi),
        "establishment_id": places.establishment_id[pi],
        "category": places.category[pi],
        "distance_m": d,
    })


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
    pairs = visit_pairs(locations, place_index(establishments, radius_m))
    return visits_finalize(visit_user_counts(pairs, by=by, tz=tz), by=by)
