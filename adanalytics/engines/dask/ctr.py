"""Question 1 on Dask: the pandas CTR kernel per partition, counts summed in a tree."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from adanalytics.engines.dask.plan import DaskTables, map_kernel, resum, share, tree_reduce
from adanalytics.engines.pandas import ctr as _ctr

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

_COUNTS = ["views", "clicks"]


def _keys(by: str) -> list[str]:
    return ["campaign_id"] + (["month"] if by == "month" else [])


def _finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    return _ctr.ctr_finalize(resum(counts, keys=_keys(by), values=_COUNTS), by=by)


def ctr(t: DaskTables, *, by: str, tz: str, split_every: int | None = None) -> dd.DataFrame:
    """Views, clicks, CTR and its Wilson interval per campaign [and month] (one partition)."""
    counts = map_kernel(t.interactions, _ctr.ctr_counts, share(t.small["ads"]), by=by, tz=tz,
                        required_columns=["ad_id", "action", "ts"])
    return tree_reduce(counts, combine=partial(resum, keys=_keys(by), values=_COUNTS),
                       aggregate=partial(_finalize, by=by), split_every=split_every)
