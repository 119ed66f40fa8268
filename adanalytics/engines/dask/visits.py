"""Question 2 on Dask: the establishments' grid index is broadcast to every partition of
the locations (no shuffle); per-user visit counts are summed in a tree."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from adanalytics.engines.dask.counting import visit_user_counts
from adanalytics.engines.dask.plan import (
    DaskTables,
    Shared,
    map_kernel,
    resum,
    shared_once,
    tree_reduce,
)
from adanalytics.engines.pandas import visits as _visits

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd


def places(t: DaskTables, radius_m: float) -> Shared:
    """The establishments indexed for ``radius_m``, broadcast (built once per radius)."""
    return shared_once(t, ("places", float(radius_m)),
                       lambda: _visits.place_index(t.small["establishments"], radius_m))


def _keys(by: str) -> list[str]:
    return ["establishment_id"] + (["month"] if by == "month" else []) + ["user_id"]


def _finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    return _visits.visits_finalize(resum(counts, keys=_keys(by), values=["visits"]), by=by)


def visits(t: DaskTables, *, by: str, tz: str, radius_m: float,
           split_every: int | None = None) -> dd.DataFrame:
    """Visits and distinct visitors of every establishment with a visit (one partition)."""
    counts = map_kernel(t.locations, visit_user_counts, places(t, radius_m), by=by, tz=tz)
    return tree_reduce(counts, combine=partial(resum, keys=_keys(by), values=["visits"]),
                       aggregate=partial(_finalize, by=by), split_every=split_every)
