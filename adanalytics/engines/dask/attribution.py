"""Question 3 on Dask: visits (grid index broadcast) and interaction "touches" (ads
broadcast) are found per partition, then shuffled *together* by user so each partition
holds every visit and touch of its users; the attributed visits are flagged there and the
pandas ``attribution_counts`` are summed in a tree.

Only compact columns travel in the shuffle: the user id, the establishment's position
in the grid index (int32), the instant and the kind of event (int8). On tables laid out
by user (``persist()``) partition ``i`` of the locations and of the interactions already
hold the same users: their events are flagged together, with no shuffle at all.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adanalytics.engines.dask.plan import (
    DaskTables,
    by_user,
    map_aligned,
    map_kernel,
    resum,
    share,
    tree_reduce,
)
from adanalytics.engines.dask.visits import places
from adanalytics.engines.pandas import attribution as _attr
from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas import visits as _visits
from adanalytics.engines.pandas.joins import positions

if TYPE_CHECKING:
    import dask.dataframe as dd

#: ``_kind`` of a row of the shuffled events: a visit or an interaction (touch).
VISIT, TOUCH = 0, 1
_COUNTS = ["visits", "attributed_visits"]


def visit_events(locations: pd.DataFrame, places: _visits.PlaceIndex) -> pd.DataFrame:
    """Kernel: the visits of a partition of locations as (user_id, establishment, ts,
    _kind); ``establishment`` is the establishment's position in the grid index."""
    qi, pi, _ = places.cells.within(locations["lat"].to_numpy(np.float64),
                                    locations["lon"].to_numpy(np.float64))
    return pd.DataFrame({
        "user_id": locations["user_id"].to_numpy().take(qi),
        "establishment": pi.astype(np.int32),
        "ts": locations["ts"].array.take(qi),
        "_kind": np.full(len(qi), VISIT, dtype=np.int8),
    }, copy=False)


def touch_events(interactions: pd.DataFrame, ad_place: pd.Series) -> pd.DataFrame:
    """Kernel: the interactions of a partition as touches (user_id, establishment, ts,
    _kind) of the position of the ad's establishment (``ad_place``: ad_id -> position)."""
    pos = positions(ad_place.index, interactions["ad_id"])
    return pd.DataFrame({
        "user_id": interactions["user_id"].to_numpy(),
        "establishment": ad_place.to_numpy().take(pos).astype(np.int32),
        "ts": interactions["ts"].array,
        "_kind": np.full(len(interactions), TOUCH, dtype=np.int8),
    }, copy=False)


def attributed(events: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """For each visit of ``events`` (in row order): is there a touch of the same user and
    establishment at ``ts_i`` with ``0 <= ts - ts_i <= window``?

    The rule of :func:`adanalytics.engines.pandas.attribution.attributed` (an as-of join
    backwards with tolerance, exact matches allowed), computed on integer codes: sort by
    (user and establishment, ts, touches before visits at an equal ts); the latest touch
    at or before each visit is the running maximum of touch positions, and the visit is
    attributed when that touch is of the same pair and at most ``window`` before it.
    """
    is_visit = events["_kind"].to_numpy() == VISIT
    if not is_visit.any() or is_visit.all():
        return np.zeros(int(is_visit.sum()), dtype=bool)
    user, _ = pd.factorize(events["user_id"].to_numpy())
    place = events["establishment"].to_numpy().astype(np.int64)
    pair = user.astype(np.int64) * (int(place.max()) + 1) + place
    ts = tb.epoch_ns(events["ts"])
    order = np.lexsort((is_visit, ts, pair))  # last key first: pair, ts, touch < visit
    pair_s, ts_s, touch_s = pair.take(order), ts.take(order), ~is_visit.take(order)
    last = np.where(touch_s, np.arange(len(order)), -1)
    np.maximum.accumulate(last, out=last)
    found = last >= 0
    src = np.where(found, last, 0)
    ok = found & (pair_s.take(src) == pair_s) & (ts_s - ts_s.take(src) <= window.value)
    flags = np.empty(len(order), dtype=bool)
    flags[order] = ok
    return flags[is_visit]


def attribution_part(events: pd.DataFrame, places: _visits.PlaceIndex, *,
                     window: pd.Timedelta, by: str, tz: str) -> pd.DataFrame:
    """Kernel on a partition holding *all* events of its users: visits and attributed
    visits per establishment [and month] (the pandas ``attribution_counts``)."""
    flags = attributed(events, window)
    visits = events.loc[events["_kind"].to_numpy() == VISIT]
    pairs = pd.DataFrame({
        "establishment_id": places.establishment_id.take(visits["establishment"].to_numpy()),
        "ts": visits["ts"].array,
    }, copy=False)
    return _attr.attribution_counts(pairs, flags, by=by, tz=tz)


def attribution_local(locations: pd.DataFrame, interactions: pd.DataFrame,
                      places: _visits.PlaceIndex, ad_place: pd.Series, *,
                      window: pd.Timedelta, by: str, tz: str) -> pd.DataFrame:
    """Kernel on a partition of the locations and of the interactions that hold the same
    users (and all of their records): ``attribution_part`` of their events."""
    events = pd.concat([visit_events(locations, places), touch_events(interactions, ad_place)],
                       ignore_index=True)
    return attribution_part(events, places, window=window, by=by, tz=tz)


def _keys(by: str) -> list[str]:
    return ["establishment_id"] + (["month"] if by == "month" else [])


def _finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    return _attr.attribution_finalize(resum(counts, keys=_keys(by), values=_COUNTS), by=by)


def attribution(t: DaskTables, *, by: str, tz: str, window: pd.Timedelta, radius_m: float,
                npartitions: int | None = None, shuffle_method: str | None = None,
                split_every: int | None = None) -> dd.DataFrame:
    """Visits, attributed visits and their ratio per establishment [and month]."""
    import dask.dataframe as dd

    plc = places(t, radius_m)
    ads = t.small["ads"]
    ad_place = pd.Series(positions(plc.value.establishment_id, ads["establishment_id"]),
                         index=pd.Index(ads["ad_id"]), name="establishment")
    if t.user_parts is not None:
        counts = map_aligned([t.locations, t.interactions], attribution_local, plc,
                             share(ad_place), window=window, by=by, tz=tz)
    else:
        visits = map_kernel(t.locations, visit_events, plc)
        touches = map_kernel(t.interactions, touch_events, share(ad_place),
                             required_columns=["user_id", "ad_id", "ts"])
        events = dd.concat([visits, touches], ignore_index=True)
        events = by_user(events, npartitions or max(1, t.locations.npartitions),
                         shuffle_method, t.rows.get("locations"))
        counts = map_kernel(events, attribution_part, plc, window=window, by=by, tz=tz)
    return tree_reduce(counts, combine=partial(resum, keys=_keys(by), values=_COUNTS),
                       aggregate=partial(_finalize, by=by), split_every=split_every)
