"""Question 3 on Dask: visits (grid index broadcast) and interaction "touches" (ads
broadcast) are found per partition, then shuffled *together* by user so each partition
holds every visit and touch of its users; the pandas as-of kernel flags the attributed
visits and the counts are summed in a tree."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adanalytics.engines.dask.plan import DaskTables, map_kernel, resum, share, tree_reduce
from adanalytics.engines.dask.plan import shuffle_method as _method
from adanalytics.engines.dask.visits import places
from adanalytics.engines.pandas import attribution as _attr
from adanalytics.engines.pandas import visits as _visits

if TYPE_CHECKING:
    import dask.dataframe as dd

#: ``_kind`` of a row of the shuffled events: a visit or an interaction (touch).
VISIT, TOUCH = 0, 1
_COUNTS = ["visits", "attributed_visits"]


def visit_events(locations: pd.DataFrame, places: _visits.PlaceIndex) -> pd.DataFrame:
    """Kernel: the visits of a partition of locations (user_id, establishment_id, ts, _kind)."""
    pairs = _visits.visit_pairs(locations, places)
    return pairs[["user_id", "establishment_id", "ts"]].assign(
        _kind=np.full(len(pairs), VISIT, dtype=np.int8))


def touch_events(interactions: pd.DataFrame, ads: pd.DataFrame) -> pd.DataFrame:
    """Kernel: the interactions of a partition as touches of the ad's establishment."""
    touches = _attr.interaction_touches(interactions, ads)
    return touches.assign(_kind=np.full(len(touches), TOUCH, dtype=np.int8))


def attribution_part(events: pd.DataFrame, *, window: pd.Timedelta, by: str,
                     tz: str) -> pd.DataFrame:
    """Kernel on a partition holding *all* events of its users: visits and attributed
    visits per establishment [and month]."""
    kind = events["_kind"].to_numpy()
    pairs = events.loc[kind == VISIT].reset_index(drop=True)
    touches = events.loc[kind == TOUCH].reset_index(drop=True)
    flags = _attr.attributed(pairs, touches, window)
    return _attr.attribution_counts(pairs, flags, by=by, tz=tz)


def _keys(by: str) -> list[str]:
    return ["establishment_id"] + (["month"] if by == "month" else [])


def _finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    return _attr.attribution_finalize(resum(counts, keys=_keys(by), values=_COUNTS), by=by)


def attribution(t: DaskTables, *, by: str, tz: str, window: pd.Timedelta, radius_m: float,
                npartitions: int | None = None, shuffle_method: str | None = None,
                split_every: int | None = None) -> dd.DataFrame:
    """Visits, attributed visits and their ratio per establishment [and month]."""
    import dask.dataframe as dd

    visits = map_kernel(t.locations, visit_events, places(t, radius_m))
    touches = map_kernel(t.interactions, touch_events, share(t.small["ads"]),
                         required_columns=["user_id", "ad_id", "ts"])
    events = dd.concat([visits, touches], ignore_index=True)
    n = npartitions or max(1, t.locations.npartitions)
    method = _method(shuffle_method, t.rows.get("locations"))
    by_user = events.shuffle("user_id", npartitions=n, shuffle_method=method, ignore_index=True)
    counts = map_kernel(by_user, attribution_part, window=window, by=by, tz=tz)
    return tree_reduce(counts, combine=partial(resum, keys=_keys(by), values=_COUNTS),
                       aggregate=partial(_finalize, by=by), split_every=split_every)
