"""Question 3: share of visits that followed an interaction with one of the
establishment's ads within the window (SPEC §3.3; the window is
``semantics.ATTRIBUTION_WINDOW``, inclusive at both ends).

An as-of join per (user, establishment): each visit looks back for the latest earlier
interaction, O(n log n); no pairwise comparison of visits with interactions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import lookup, sort_output
from adanalytics.engines.pandas.visits import place_index, visit_pairs
from adanalytics.semantics import output_columns, output_keys


def interaction_touches(interactions: pd.DataFrame, ads: pd.DataFrame) -> pd.DataFrame:
    """Kernel: every interaction as (user_id, establishment_id, ts) of the ad's establishment."""
    return pd.DataFrame({
        "user_id": interactions["user_id"].to_numpy(),
        "establishment_id": lookup(ads["ad_id"], ads["establishment_id"], interactions["ad_id"]).to_numpy(),
        "ts": interactions["ts"].array,  # .array keeps tz; .to_numpy() would box Timestamps
    }).astype({"ts": "datetime64[ns, UTC]"})


def attributed(pairs: pd.DataFrame, touches: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """Kernel (needs all rows of each user): for each visit, is there a touch of the same
    user and establishment at ``ts_i`` with ``0 <= ts - ts_i <= window``?"""
    if pairs.empty or touches.empty:
        return np.zeros(len(pairs), dtype=bool)
    left = pd.DataFrame({
        "user_id": pairs["user_id"].to_numpy(),
        "establishment_id": pairs["establishment_id"].to_numpy(),
        "ts": pairs["ts"].array,
        "_row": np.arange(len(pairs)),
    }).astype({"ts": "datetime64[ns, UTC]"})
    left = left.sort_values("ts", kind="mergesort")
    right = touches[["user_id", "establishment_id", "ts"]].rename(columns={"ts": "ts_i"})
    right = right.sort_values("ts_i", kind="mergesort")
    key_dtypes = {c: object for c in ("user_id", "establishment_id")
                  if left[c].dtype != right[c].dtype}
    if key_dtypes:  # e.g. int64 vs object after an empty partition
        left = left.astype(key_dtypes)
        right = right.astype(key_dtypes)
    m = pd.merge_asof(
        left, right, left_on="ts", right_on="ts_i", by=["user_id", "establishment_id"],
        direction="backward", tolerance=window, allow_exact_matches=True,
    )
    out = np.zeros(len(pairs), dtype=bool)
    out[m["_row"].to_numpy()] = m["ts_i"].notna().to_numpy()
    return out


def attribution_counts(pairs: pd.DataFrame, flags: np.ndarray, *, by: str, tz: str) -> pd.DataFrame:
    """Kernel: visits and attributed visits per establishment [and month] (summable)."""
    keys = ["establishment_id"] + (["month"] if by == "month" else [])
    df = pd.DataFrame({
        "establishment_id": pairs["establishment_id"].to_numpy(),
        "visits": np.ones(len(pairs), dtype=np.int64),
        "attributed_visits": flags.astype(np.int64),
    })
    if by == "month":
        df["month"] = tb.month(tb.local(pairs["ts"], tz)).to_numpy()
    if df.empty:
        return df[[*keys, "visits", "attributed_visits"]]
    return df.groupby(keys, sort=False, as_index=False)[["visits", "attributed_visits"]].sum()


def attribution_finalize(counts: pd.DataFrame, *, by: str) -> pd.DataFrame:
    """Add the ratio; spec column order, key order."""
    out = counts.copy()
    out["visits"] = out["visits"].astype(np.int64)
    out["attributed_visits"] = out["attributed_visits"].astype(np.int64)
    out["ratio"] = out["attributed_visits"] / out["visits"]
    return sort_output(out[output_columns("attribution", by)], output_keys("attribution", by))


def attribution(locations: pd.DataFrame, establishments: pd.DataFrame,
                interactions: pd.DataFrame, ads: pd.DataFrame, *, by: str, tz: str,
                window: pd.Timedelta, radius_m: float) -> pd.DataFrame:
    """Visits, attributed visits and their ratio per establishment [and month]."""
    pairs = visit_pairs(locations, place_index(establishments, radius_m))
    flags = attributed(pairs, interaction_touches(interactions, ads), window)
    return attribution_finalize(attribution_counts(pairs, flags, by=by, tz=tz), by=by)
