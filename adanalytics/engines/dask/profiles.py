"""Questions 5 and 6 on Dask.

Per-user profile counts are summable: each partition of the big table is counted on its
own (no shuffle of the input). The *partial counts* - far fewer rows - are then either
summed in a tree into one partition (small data), or, from ``PER_USER_MIN_ROWS`` input
rows on, shuffled by user so that the shares and the preferred category (per user and
slot, the pandas finalize functions) are computed in parallel, one group of users per
partition; only the final sort into key order is serial. On tables laid out by user
(``persist()``) each partition holds all records of its users: it is counted and finished
where it is, with no shuffle, on integer codes in one pass (``counting.*_of_users``) and
already sorted, so that the last step only interleaves the partitions' users.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics.engines.dask.counting import (
    interaction_profile_counts,
    interaction_profile_of_users,
    visit_profile_counts,
    visit_profile_of_users,
)
from adanalytics.engines.dask.plan import (
    DaskTables,
    Shared,
    by_user,
    map_kernel,
    resum,
    share,
    tree_reduce,
)
from adanalytics.engines.dask.visits import places
from adanalytics.engines.pandas import profiles as _prof
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    import dask.dataframe as dd

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


def interleave_users(parts: pd.DataFrame) -> pd.DataFrame:
    """Sorted results of disjoint sets of users, concatenated -> in key order: a stable
    sort on the user id alone (each user's rows are in one run, already in order)."""
    if parts.empty:
        return parts.reset_index(drop=True)
    codes, _ = pd.factorize(parts["user_id"].to_numpy(), sort=True)
    return parts.take(np.argsort(codes, kind="stable")).reset_index(drop=True)


def _finish(t: DaskTables, table: str, columns: list[str] | None,
            counter: Callable[..., pd.DataFrame], of_users: Callable[..., pd.DataFrame],
            shared: Shared, counter_kw: dict[str, Any], *,
            keys: list[str], count: str, analysis: str,
            preferred: str | None, shuffle_method: str | None,
            split_every: int | None) -> dd.DataFrame:
    """The profile (or preferred categories) of ``table``: finished per partition where
    each holds all records of its users (tables laid out by user), else ``counter`` per
    partition, then finished per group of users after a shuffle of the partial counts
    (large inputs) or in one task."""
    out = preferred or analysis
    spec = {"keys": keys, "count": count, "analysis": analysis, "preferred": preferred}
    frame = getattr(t, table)
    if t.user_parts is not None:
        parts = map_kernel(frame, of_users, shared, required_columns=columns,
                           preferred=preferred is not None, **counter_kw)
        return tree_reduce(parts, combine=_concat, aggregate=interleave_users,
                           split_every=split_every)
    counts = map_kernel(frame, counter, shared, required_columns=columns, **counter_kw)
    input_rows = t.rows.get(table)
    if input_rows is None or input_rows < PER_USER_MIN_ROWS or counts.npartitions < 2:
        return tree_reduce(counts, combine=partial(resum, keys=keys, values=[count]),
                           aggregate=partial(finalize, **spec), split_every=split_every)
    n = max(2, counts.npartitions // 4)
    parts = map_kernel(by_user(counts, n, shuffle_method, input_rows), finalize, **spec)
    return tree_reduce(parts, combine=_concat, aggregate=partial(_sorted, analysis=out),
                       split_every=split_every)


def _interactions(t: DaskTables, tz: str) -> tuple[Any, ...]:
    return (t, "interactions", ["user_id", "ad_id", "ts"], interaction_profile_counts,
            interaction_profile_of_users, share(t.small["ads"]), {"tz": tz})


def _visits(t: DaskTables, tz: str, radius_m: float) -> tuple[Any, ...]:
    return (t, "locations", None, visit_profile_counts, visit_profile_of_users,
            places(t, radius_m), {"tz": tz})


def interaction_profile(t: DaskTables, *, tz: str, shuffle_method: str | None = None,
                        split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: interactions and share per ad category."""
    return _finish(*_interactions(t, tz), **_INTERACTION, preferred=None,
                   shuffle_method=shuffle_method, split_every=split_every)


def preferred_ad_category(t: DaskTables, *, tz: str, shuffle_method: str | None = None,
                          split_every: int | None = None) -> dd.DataFrame:
    """Per user and period of the day: the preferred ad category."""
    return _finish(*_interactions(t, tz), **_INTERACTION, preferred="preferred_ad_category",
                   shuffle_method=shuffle_method, split_every=split_every)


def visit_profile(t: DaskTables, *, tz: str, radius_m: float, shuffle_method: str | None = None,
                  split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: visits and share per establishment category."""
    return _finish(*_visits(t, tz, radius_m), **_VISIT, preferred=None,
                   shuffle_method=shuffle_method, split_every=split_every)


def preferred_establishment_category(t: DaskTables, *, tz: str, radius_m: float,
                                     shuffle_method: str | None = None,
                                     split_every: int | None = None) -> dd.DataFrame:
    """Per user and weekday: the preferred establishment category."""
    return _finish(*_visits(t, tz, radius_m), **_VISIT,
                   preferred="preferred_establishment_category",
                   shuffle_method=shuffle_method, split_every=split_every)
