"""Small-table look-ups shared by the kernels (a hash join against a dimension table)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def positions(keys: pd.Series | pd.Index, query: pd.Series) -> np.ndarray:
    """Position of each ``query`` value in ``keys`` (-1 where absent)."""
    return pd.Index(keys).get_indexer(query)


def lookup(keys: pd.Series, values: pd.Series, query: pd.Series) -> pd.Series:
    """``values[keys == q]`` for each ``q`` in ``query`` (keys are unique, all present)."""
    pos = positions(keys, query)
    out = values.to_numpy()[pos]
    return pd.Series(out, index=query.index, name=values.name)


def sort_output(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows in key order, period names in day order, fresh index."""
    from adanalytics.semantics import PERIOD_NAMES

    if df.empty:
        return df.reset_index(drop=True)
    sort_cols = []
    tmp = df
    for k in keys:
        if k == "period":
            tmp = tmp.assign(_period_rank=tmp["period"].map({p: i for i, p in enumerate(PERIOD_NAMES)}))
            sort_cols.append("_period_rank")
        else:
            sort_cols.append(k)
    tmp = tmp.sort_values(sort_cols, kind="mergesort")
    return tmp.drop(columns=[c for c in ("_period_rank",) if c in tmp.columns]).reset_index(drop=True)
