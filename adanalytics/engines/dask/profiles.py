"""Questions 5 and 6 on Dask.

Per-user profile counts are summable: each partition of the big table is counted on its
own (no shuffle of the input). The *partial counts* - far fewer rows - are then either
summed in a tree into one partition (small data), or, from ``PER_USER_MIN_ROWS`` input
rows on, shuffled by user so that the shares and the preferred category (per user and
slot, the pandas finalize functions) are computed in parallel, one group of users per
partition; only the final sort into key order is serial. On tables laid out by user
(``persist()``) each partition's counts already cover all of its users: they are finished
where they are, with no shuffle.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from adanalytics.engines.dask.counting import interaction_profile_counts, visit_profile_counts
from adanalytics.engines.dask.plan import (
    DaskTables,
    map_kernel,
    resum,
    share,
    tree_reduce,
)
from adanalytics.engines.dask.plan import shuffle_method as _method
from adanalytics.engines.dask.visits import places
from adanalytics.engines.pandas import profiles as _prof
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

_INTERACTION = {"keys": ["user_id", "period", "category"], "count": "interactions",
                "analysis": "interaction_profile"}
_VISIT = {"keys": ["user_id", "weekday", "category"], "count": "visits",
          "analysis": "visit_profile"}
#: Input rows from which the finalize step runs per group of users (one shuffle of the
#: partial counts) instead of in a single task.
PER_USER_MIN_ROWS = 2_000_000


def finalize(counts: pd.DataFrame, *, keys: list[str], count: str, analysis: str,
             preferred: str | None = None) -> pd.DataFrame:
    """Partial counts (all of their users) -> the profile, or the preferred categories."""
    profile = _prof.profile_finalize(resum(counts, keys=keys, values=[count]), analysis)
    return profile if preferred is None else _prof.preferred(profile, preferred)


def _sorted(frame: pd.DataFrame, *, analysis: str) -> pd.DataFrame:
    return sort_output(frame[output_columns(analysis)], output_keys(analysis))


def _concat(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _finish(counts: dd.DataFrame, input_rows: int | None, *, keys: list[str], count: str,
            analysis: str, preferred: str | None, shuffle_method: str | None,
            split_every: int | None, by_user: bool = False) -> dd.DataFrame:
    """The profile (or preferred categories) from partial counts; ``by_user``: the counts'
    partitions already hold all of their users' counts (tables laid out by user)."""
    out = preferred or analysis
    spec = {"keys": keys, "count": count, "analysis": analysis, "preferred": preferred}
    if by_user:
        parts = map_kernel(counts, finalize, **spec)
        return tree_reduce(parts, combine=_concat, aggregate=partial(_sorted, analysis=out),
                           split_every=split_every)
    if input_rows is None or input_rows < PER_USER_MIN_ROWS or counts.npartitions < 2:
        return tree_reduce(counts, combine=partial(resum, keys=keys, values=[count]),
                           aggregate=partial(finalize, **spec), split_every=split_every)
    n = max(2, counts.npartitions // 4)
    by_user = counts.shuffle("user_id", npartitions=n, ignore_index=True,
                             shuffle_method=_method(shuffle_method, input_rows))
    parts = map_kernel(by_user, finalize, **spec)
    return tree_reduce(parts, combine=_concat, aggregate=partial(_sorted, analysis=out),
                       split_every=split_every)


def _interaction_counts(t: DaskTables, tz: str) -> dd.DataFrame:
    return map_kernel(t.interactions, interaction_profile_counts, share(t.small["ads"]),
                      tz=tz, required_columns=["user_id", "ad_id", "ts"])


def _visit_counts(t: DaskTables, tz: str, radius_m: float) -> dd.DataFrame:
    return map_kernel(t.locations, visit_profile_counts, places(t, radius_m), tz=tz)


def interaction_profile(t: DaskTables, *, tz: str, shuffle_method: str | None = None,
                        split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: interactions and share per ad category."""
    return _finish(_interaction_counts(t, tz), t.rows.get("interactions"), **_INTERACTION,
                   preferred=None, shuffle_method=shuffle_method, split_every=split_every,
                   by_user=t.user_parts is not None)


def preferred_ad_category(t: DaskTables, *, tz: str, shuffle_method: str | None = None,
                          split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: the preferred ad category."""
    return _finish(_interaction_counts(t, tz), t.rows.get("interactions"), **_INTERACTION,
                   preferred="preferred_ad_category", shuffle_method=shuffle_method,
                   split_every=split_every, by_user=t.user_parts is not None)


def visit_profile(t: DaskTables, *, tz: str, radius_m: float, shuffle_method: str | None = None,
                  split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: visits and share per establishment category."""
    return _finish(_visit_counts(t, tz, radius_m), t.rows.get("locations"), **_VISIT,
                   preferred=None, shuffle_method=shuffle_method, split_every=split_every,
                   by_user=t.user_parts is not None)


def preferred_establishment_category(t: DaskTables, *, tz: str, radius_m: float,
                                     shuffle_method: str | None = None,
                                     split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: the preferred establishment category."""
    return _finish(_visit_counts(t, tz, radius_m), t.rows.get("locations"), **_VISIT,
                   preferred="preferred_establishment_category",
                   shuffle_method=shuffle_method, split_every=split_every,
                   by_user=t.user_parts is not None)
