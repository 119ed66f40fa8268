"""Question 4: interactions per ad category for every local hour (SPEC §3.4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import lookup, sort_output
from adanalytics.semantics import output_columns, output_keys


def hourly_counts(interactions: pd.DataFrame, ads: pd.DataFrame, *, by: str, tz: str) -> pd.DataFrame:
    """Kernel: views and clicks per (category, [month], hour) - summable."""
    loc = tb.local(interactions["ts"], tz)
    df = pd.DataFrame({
        "category": lookup(ads["ad_id"], ads["category"], interactions["ad_id"]).to_numpy(),
        "hour": tb.hour(loc).to_numpy(),
    })
    if by == "month":
        df["month"] = tb.month(loc).to_numpy()
    click = (interactions["action"] == "click").to_numpy()
    df["views"] = (~click).astype(np.int64)
    df["clicks"] = click.astype(np.int64)
    keys = output_keys("category_hourly", by)
    if df.empty:
        return df[[*keys, "views", "clicks"]]
    return df.groupby(keys, sort=False, as_index=False, dropna=False)[["views", "clicks"]].sum()


def hourly_finalize(counts: pd.DataFrame, categories: list[str], *, by: str) -> pd.DataFrame:
    """The complete grid: every ad category x 24 hours [x every month with interactions]."""
    keys = output_keys("category_hourly", by)
    axes: list[list] = [sorted(set(categories), key=str)]
    if by == "month":
        axes.append(sorted(counts["month"].unique()))
    axes.append(list(range(24)))
    grid = pd.MultiIndex.from_product(axes, names=keys).to_frame(index=False)
    grid["hour"] = grid["hour"].astype(np.int64)
    summed = counts.groupby(keys, as_index=False, dropna=False)[["views", "clicks"]].sum() if len(counts) else counts
    out = grid.merge(summed, on=keys, how="left")
    out["views"] = out["views"].fillna(0).astype(np.int64)
    out["clicks"] = out["clicks"].fillna(0).astype(np.int64)
    out["interactions"] = out["views"] + out["clicks"]
    return sort_output(out[output_columns("category_hourly", by)], keys)


def category_hourly(interactions: pd.DataFrame, ads: pd.DataFrame, *, by: str, tz: str) -> pd.DataFrame:
    """Interactions, views and clicks per ad category and local hour, zeros included."""
    counts = hourly_counts(interactions, ads, by=by, tz=tz)
    return hourly_finalize(counts, ads["category"].dropna().tolist(), by=by)
