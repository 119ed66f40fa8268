"""Question 4 on Dask: hourly counts per partition, the complete grid at the end."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from adanalytics.engines.dask.plan import DaskTables, map_kernel, resum, share, tree_reduce
from adanalytics.engines.pandas import hourly as _hourly
from adanalytics.semantics import output_keys

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

_COUNTS = ["views", "clicks"]


def _finalize(counts: pd.DataFrame, *, categories: list[str], by: str) -> pd.DataFrame:
    return _hourly.hourly_finalize(counts, categories, by=by)


def category_hourly(t: DaskTables, *, by: str, tz: str,
                    split_every: int | None = None) -> dd.DataFrame:
    """Interactions, views and clicks per ad category and local hour, zeros included."""
    ads = t.small["ads"]
    counts = map_kernel(t.interactions, _hourly.hourly_counts, share(ads), by=by, tz=tz,
                        required_columns=["ad_id", "action", "ts"])
    keys = output_keys("category_hourly", by)
    return tree_reduce(
        counts, combine=partial(resum, keys=keys, values=_COUNTS),
        aggregate=partial(_finalize, categories=ads["category"].dropna().tolist(), by=by),
        split_every=split_every,
    )
