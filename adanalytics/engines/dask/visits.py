"""Question 2 on Dask: the establishments' grid index is broadcast to every partition of
the locations (no shuffle); per-user visit counts are summed in a tree.

On tables laid out by user (``persist()``), no user spans two partitions: each partition
counts its visits *and distinct visitors* itself (the pandas engine's ``visit_totals``)
and only those totals - one row per visited establishment - travel to the final sum.
"""

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
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.semantics import output_keys

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

_TOTALS = ["visits", "visitors"]


def places(t: DaskTables, radius_m: float) -> Shared:
    """The establishments indexed for ``radius_m``, broadcast (built once per radius)."""
    return shared_once(t, ("places", float(radius_m)),
                       lambda: _visits.place_index(t.small["establishments"], radius_m))


def _groups(by: str) -> list[str]:
    return ["establishment_id"] + (["month"] if by == "month" else [])


def _finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    keys = [*_groups(by), "user_id"]
    return _visits.visits_finalize(resum(counts, keys=keys, values=["visits"]), by=by)


def _add_totals(totals: pd.DataFrame, *, by: str) -> pd.DataFrame:
    summed = resum(totals, keys=_groups(by), values=_TOTALS)
    return sort_output(summed, output_keys("visits", by))


def visits(t: DaskTables, *, by: str, tz: str, radius_m: float,
           split_every: int | None = None) -> dd.DataFrame:
    """Visits and distinct visitors of every establishment with a visit (one partition)."""
    plc = places(t, radius_m)
    if t.user_parts is not None:  # users never span partitions: their totals add up
        totals = map_kernel(t.locations, _visits.visit_totals, plc, by=by, tz=tz)
        add = partial(_add_totals, by=by)
        return tree_reduce(totals, combine=partial(resum, keys=_groups(by), values=_TOTALS),
                           aggregate=add, split_every=split_every)
    counts = map_kernel(t.locations, visit_user_counts, plc, by=by, tz=tz)
    keys = [*_groups(by), "user_id"]
    return tree_reduce(counts, combine=partial(resum, keys=keys, values=["visits"]),
                       aggregate=partial(_finalize, by=by), split_every=split_every)
