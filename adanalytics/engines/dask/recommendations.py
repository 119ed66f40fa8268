"""Question 7 (batch) on Dask: the locations are shuffled by user (the approach rule
reads each user's events in order; tables persisted by user already are); every partition then runs the pandas rule with the
grid index and the ranked ads broadcast. The ads' historical CTR ranking is itself a
tree reduction over the interactions."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import pandas as pd

from adanalytics.engines.base import RecommendParams
from adanalytics.engines.dask.plan import (
    DaskTables,
    Shared,
    by_user,
    map_kernel,
    resum,
    shared_once,
    tree_reduce,
)
from adanalytics.engines.pandas import recommendations as _rec
from adanalytics.engines.pandas import visits as _visits
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    import dask.dataframe as dd

_COUNTS = ["views", "clicks"]


def _ranked(counts: pd.DataFrame, *, ads: pd.DataFrame, campaigns: pd.DataFrame) -> pd.DataFrame:
    return _rec.ranked_ads(ads, campaigns, resum(counts, keys=["ad_id"], values=_COUNTS))


def approach_places(t: DaskTables, radius_m: float) -> Shared:
    """The establishments with an ad, indexed for ``radius_m``, broadcast (once per radius)."""
    return shared_once(t, ("approach_places", float(radius_m)), lambda: _rec.approach_places(
        t.small["establishments"], t.small["ads"]["establishment_id"], radius_m))


def recommendation_rows(events: pd.DataFrame, places: _visits.PlaceIndex, ranked: pd.DataFrame,
                        *, tz: str, params: RecommendParams) -> pd.DataFrame:
    """Kernel on a partition holding *all* events of its users: their suggestions."""
    return _rec.recommend(events, places, ranked, tz=tz, params=params).rows


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    return sort_output(rows[output_columns("recommendations")], output_keys("recommendations"))


def _concat(rows: pd.DataFrame) -> pd.DataFrame:
    return rows


def recommendations(t: DaskTables, *, tz: str, params: RecommendParams,
                    npartitions: int | None = None, shuffle_method: str | None = None,
                    split_every: int | None = None) -> dd.DataFrame:
    """Every suggestion the streaming job would emit for the locations table."""
    ads, campaigns = t.small["ads"], t.small["campaigns"]
    counts = map_kernel(t.interactions, _rec.ad_counts, required_columns=["ad_id", "action"])
    rank = partial(_ranked, ads=ads, campaigns=campaigns)
    ranked_frame = tree_reduce(counts, combine=partial(resum, keys=["ad_id"], values=_COUNTS),
                               aggregate=rank, split_every=split_every)
    ranked = Shared(rank(counts._meta), ranked_frame.to_delayed()[0])
    locations = t.locations  # laid out by user at persist(), else shuffled so
    if t.user_parts is None:
        locations = by_user(locations, npartitions, shuffle_method, t.rows.get("locations"))
    rows = map_kernel(locations, recommendation_rows, approach_places(t, params.approach_radius_m),
                      ranked, tz=tz, params=params)
    return tree_reduce(rows, combine=_concat, aggregate=_sorted, split_every=split_every)
