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
    user and establishment at ``ts_i`` with ``0 <= ts - ts_i <= window``?

    An as-of search on integer keys: (user, establishment) pairs and instants are
    replaced by dense codes and ranks, so that one sorted int64 key orders the touches by
    (pair, time); each visit then finds the latest touch at or before it with one binary
    search. O((n + m) log(n + m)), no string hashing inside the search.
    """
    n = len(pairs)
    out = np.zeros(n, dtype=bool)
    if n == 0 or touches.empty:
        return out
    users, _ = pd.factorize(np.concatenate([
        pairs["user_id"].to_numpy(dtype=object), touches["user_id"].to_numpy(dtype=object)]))
    places, place_names = pd.factorize(np.concatenate([
        pairs["establishment_id"].to_numpy(dtype=object),
        touches["establishment_id"].to_numpy(dtype=object)]))
    pair, _ = pd.factorize(users.astype(np.int64) * max(len(place_names), 1) + places)
    pv, pt = pair[:n], pair[n:]
    tv, tt = tb.epoch_ns(pairs["ts"]), tb.epoch_ns(touches["ts"])
    relevant = np.isin(pt, pv)  # touches of pairs never visited cannot attribute anything
    pt, tt = pt[relevant], tt[relevant]
    if len(pt) == 0:
        return out
    # rank of every instant among all instants (equal instants, equal rank)
    all_t = np.sort(np.concatenate([tv, tt]))
    rv = np.searchsorted(all_t, tv, side="right")
    rt = np.searchsorted(all_t, tt, side="right")
    span = np.int64(len(all_t) + 1)
    key_t = pt.astype(np.int64) * span + rt
    order = np.argsort(key_t, kind="stable")
    key_t, pt, tt = key_t[order], pt[order], tt[order]
    # latest touch with key <= the visit's key: same pair and ts_i <= ts, if any
    j = np.searchsorted(key_t, pv.astype(np.int64) * span + rv, side="right") - 1
    ok = j >= 0
    jj = np.where(ok, j, 0)
    ok &= pt[jj] == pv
    ok &= (tv - tt[jj]) <= window.value
    return ok


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
