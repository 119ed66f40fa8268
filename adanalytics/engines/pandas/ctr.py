"""Question 1: click-through rate per campaign (SPEC §3.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import lookup, sort_output
from adanalytics.semantics import output_columns, output_keys, wilson_interval


def ctr_counts(interactions: pd.DataFrame, ads: pd.DataFrame, *, by: str, tz: str) -> pd.DataFrame:
    """Kernel: views and clicks per campaign [and month] (summable across partitions)."""
    keys = ["campaign_id"] + (["month"] if by == "month" else [])
    df = pd.DataFrame({"campaign_id": lookup(ads["ad_id"], ads["campaign_id"], interactions["ad_id"])})
    if by == "month":
        df["month"] = tb.month(tb.local(interactions["ts"], tz))
    click = (interactions["action"] == "click").to_numpy()
    df["views"] = (~click).astype(np.int64)
    df["clicks"] = click.astype(np.int64)
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=df[c].dtype) for c in [*keys, "views", "clicks"]})
    return df.groupby(keys, sort=False, as_index=False)[["views", "clicks"]].sum()


def ctr_finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    """Add ctr and its Wilson interval to summed counts; spec column order, key order."""
    out = counts.copy()
    views = out["views"].to_numpy(dtype=np.float64)
    clicks = out["clicks"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ctr"] = np.where(views > 0, clicks / views, np.nan)
    out["ctr_low"], out["ctr_high"] = wilson_interval(clicks, views)
    out["views"] = out["views"].astype(np.int64)
    out["clicks"] = out["clicks"].astype(np.int64)
    return sort_output(out[output_columns("ctr", by)], output_keys("ctr", by))


def ctr(interactions: pd.DataFrame, ads: pd.DataFrame, *, by: str, tz: str) -> pd.DataFrame:
    """CTR of every campaign with at least one interaction in the bucket."""
    return ctr_finalize(ctr_counts(interactions, ads, by=by, tz=tz), by=by)
