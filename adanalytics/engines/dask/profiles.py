"""Questions 5 and 6 on Dask: per-user profile counts are summable, so each partition is
counted on its own and the counts are summed in a tree - no shuffle by user is needed;
shares and the preferred category come from the pandas finalize functions."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from adanalytics.engines.dask.counting import interaction_profile_counts, visit_profile_counts
from adanalytics.engines.dask.plan import DaskTables, map_kernel, resum, share, tree_reduce
from adanalytics.engines.dask.visits import places
from adanalytics.engines.pandas import profiles as _prof

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

_INTERACTION_KEYS = ["user_id", "period", "category"]
_VISIT_KEYS = ["user_id", "weekday", "category"]


def _profile(counts: pd.DataFrame, *, keys: list[str], count: str, analysis: str) -> pd.DataFrame:
    return _prof.profile_finalize(resum(counts, keys=keys, values=[count]), analysis)


def _preferred(counts: pd.DataFrame, *, keys: list[str], count: str, analysis: str,
               preferred: str) -> pd.DataFrame:
    return _prof.preferred(_profile(counts, keys=keys, count=count, analysis=analysis), preferred)


def _interaction_counts(t: DaskTables, tz: str) -> dd.DataFrame:
    return map_kernel(t.interactions, interaction_profile_counts, share(t.small["ads"]),
                      tz=tz, required_columns=["user_id", "ad_id", "ts"])


def interaction_profile(t: DaskTables, *, tz: str, split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: interactions and share per ad category."""
    kw = {"keys": _INTERACTION_KEYS, "count": "interactions"}
    return tree_reduce(_interaction_counts(t, tz),
                       combine=partial(resum, keys=_INTERACTION_KEYS, values=["interactions"]),
                       aggregate=partial(_profile, **kw, analysis="interaction_profile"),
                       split_every=split_every)


def preferred_ad_category(t: DaskTables, *, tz: str, split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: the preferred ad category."""
    kw = {"keys": _INTERACTION_KEYS, "count": "interactions"}
    return tree_reduce(_interaction_counts(t, tz),
                       combine=partial(resum, keys=_INTERACTION_KEYS, values=["interactions"]),
                       aggregate=partial(_preferred, **kw, analysis="interaction_profile",
                                         preferred="preferred_ad_category"),
                       split_every=split_every)


def _visit_counts(t: DaskTables, tz: str, radius_m: float) -> dd.DataFrame:
    return map_kernel(t.locations, visit_profile_counts, places(t, radius_m), tz=tz)


def visit_profile(t: DaskTables, *, tz: str, radius_m: float,
                  split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: visits and share per establishment category."""
    kw = {"keys": _VISIT_KEYS, "count": "visits"}
    return tree_reduce(_visit_counts(t, tz, radius_m),
                       combine=partial(resum, keys=_VISIT_KEYS, values=["visits"]),
                       aggregate=partial(_profile, **kw, analysis="visit_profile"),
                       split_every=split_every)


def preferred_establishment_category(t: DaskTables, *, tz: str, radius_m: float,
                                     split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: the preferred establishment category."""
    kw = {"keys": _VISIT_KEYS, "count": "visits"}
    return tree_reduce(_visit_counts(t, tz, radius_m),
                       combine=partial(resum, keys=_VISIT_KEYS, values=["visits"]),
                       aggregate=partial(_preferred, **kw, analysis="visit_profile",
                                         preferred="preferred_establishment_category"),
                       split_every=split_every)
