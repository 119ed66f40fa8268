"""Question 7: ad suggestions to users approaching an establishment (SPEC §3.7).

:func:`recommend` is written for a batch of events *plus the state left by earlier
events* (each user's last event, each (user, establishment)'s last suggestion), so the
batch analysis (empty state) and the streaming job (state kept between micro-batches)
run the very same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adanalytics.engines.base import RecommendParams
from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import sort_output
from adanalytics.engines.pandas.visits import PlaceIndex, place_index
from adanalytics.geo import haversine_m
from adanalytics.semantics import output_columns, output_keys

_OUT = output_columns("recommendations")


def ad_counts(interactions: pd.DataFrame) -> pd.DataFrame:
    """Kernel: views and clicks per ad over the whole interactions table (summable)."""
    click = (interactions["action"] == "click").to_numpy()
    df = pd.DataFrame({
        "ad_id": interactions["ad_id"].to_numpy(),
        "views": (~click).astype(np.int64),
        "clicks": click.astype(np.int64),
    })
    return df.groupby("ad_id", sort=False, as_index=False)[["views", "clicks"]].sum()


def ranked_ads(ads: pd.DataFrame, campaigns: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Every ad with its campaign's dates and its rank among all ads: highest historical
    CTR first, ads without views last, ties by smallest ad_id.

    Columns: establishment_id, ad_id, start_date, end_date, rank.
    """
    df = ads[["ad_id", "establishment_id", "campaign_id"]].merge(
        campaigns[["campaign_id", "start_date", "end_date"]], on="campaign_id", how="left"
    )
    df = df.merge(counts, on="ad_id", how="left")
    views = df["views"].fillna(0).to_numpy(np.float64)
    clicks = df["clicks"].fillna(0).to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = np.where(views > 0, clicks / views, -np.inf)
    df = df.assign(_no_views=views == 0, _neg_ctr=-ctr)
    df = df.sort_values(["_no_views", "_neg_ctr", "ad_id"], kind="mergesort")
    df["rank"] = np.arange(len(df), dtype=np.int64)
    return df[["establishment_id", "ad_id", "start_date", "end_date", "rank"]].reset_index(drop=True)


@dataclass
class RecommenderState:
    """What the rule remembers between batches of events."""

    #: user_id, ts, lat, lon of each user's last accepted event
    last_event: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"user_id": pd.Series(dtype=object), "ts": pd.Series(dtype="datetime64[ns, UTC]"),
         "lat": pd.Series(dtype=np.float64), "lon": pd.Series(dtype=np.float64)}))
    #: user_id, establishment_id, ts of the last suggestion of each pair
    last_suggestion: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"user_id": pd.Series(dtype=object), "establishment_id": pd.Series(dtype=object),
         "ts": pd.Series(dtype="datetime64[ns, UTC]")}))


@dataclass
class RecommendResult:
    rows: pd.DataFrame
    state: RecommenderState
    late: int


def recommend(events: pd.DataFrame, places: PlaceIndex, ranked: pd.DataFrame, *,
              tz: str, params: RecommendParams,
              state: RecommenderState | None = None) -> RecommendResult:
    """Apply the approach rule to ``events`` (user_id, lat, lon, ts) after ``state``.

    ``places`` must be indexed for ``params.approach_radius_m``. Events older than their
    user's last seen event are late: counted and dropped.
    """
    state = state or RecommenderState()
    ev = pd.DataFrame({
        "user_id": events["user_id"].to_numpy(),
        "lat": events["lat"].to_numpy(np.float64),
        "lon": events["lon"].to_numpy(np.float64),
        "ts": events["ts"].array,  # .array keeps tz; .to_numpy() would box Timestamps
    }).astype({"ts": "datetime64[ns, UTC]"})
    late = 0
    prior = state.last_event
    if len(prior):
        last_ts = ev["user_id"].map(pd.Series(prior["ts"].array, index=prior["user_id"]))
        is_late = (ev["ts"] < last_ts).to_numpy()
        late = int(is_late.sum())
        ev = ev[~is_late]
        prior = prior[prior["user_id"].isin(ev["user_id"])]
    ev["_new"] = 1
    seq = pd.concat([prior.assign(_new=0)[ev.columns], ev], ignore_index=True) if len(prior) else ev
    # each user's events in (prior first, ts, lat, lon) order; users grouped by an integer
    # code (their order among themselves does not matter: the output is sorted at the end)
    codes = pd.factorize(seq["user_id"], sort=False)[0]
    new = seq["_new"].to_numpy()
    ts_ns = tb.epoch_ns(seq["ts"])
    order = np.lexsort((seq["lon"].to_numpy(), seq["lat"].to_numpy(), ts_ns, new, codes))
    seq = seq.take(order).reset_index(drop=True)
    codes, new, ts_ns = codes[order], new[order], ts_ns[order]

    users = seq["user_id"].to_numpy()
    lat = seq["lat"].to_numpy()
    lon = seq["lon"].to_numpy()
    same_user = np.zeros(len(seq), dtype=bool)
    if len(seq) > 1:
        same_user[1:] = codes[1:] == codes[:-1]
    gap_ok = np.zeros(len(seq), dtype=bool)
    gap_ok[1:] = same_user[1:] & (ts_ns[1:] - ts_ns[:-1] <= params.max_gap.value)
    gap_ok &= new == 1
    rows = np.flatnonzero(gap_ok)

    qi, pi, d_k = places.cells.within(lat[rows], lon[rows], params.approach_radius_m)
    k = rows[qi]
    d_prev = haversine_m(lat[k - 1], lon[k - 1], places.cells.lat[pi], places.cells.lon[pi])
    closing = (d_prev - d_k) >= params.min_closing_m
    k, pi, d_k = k[closing], pi[closing], d_k[closing]

    cand = pd.DataFrame({
        "_cand": np.arange(len(k)),
        "user_id": users[k],
        "establishment_id": places.establishment_id[pi],
        "ts": seq["ts"].array.take(k),
        "distance_m": d_k,
    }).astype({"ts": "datetime64[ns, UTC]"})
    cand["_date"] = tb.local_date(tb.local(cand["ts"], tz))
    active = cand.merge(ranked, on="establishment_id", how="inner")
    active = active[(active["start_date"] <= active["_date"]) & (active["_date"] <= active["end_date"])]
    best = active.sort_values(["_cand", "rank"], kind="mergesort").drop_duplicates("_cand")

    emitted, last_suggestion = _apply_cooldown(best, state.last_suggestion, params.cooldown)
    out = sort_output(emitted[_OUT], output_keys("recommendations"))
    is_last = np.ones(len(seq), dtype=bool)  # each user's last event (users are contiguous)
    is_last[:-1] = codes[1:] != codes[:-1]
    last = seq.loc[is_last, ["user_id", "ts", "lat", "lon"]]
    kept = state.last_event[~state.last_event["user_id"].isin(last["user_id"])]
    new_state = RecommenderState(
        last_event=pd.concat([kept, last], ignore_index=True) if len(kept) else last.reset_index(drop=True),
        last_suggestion=last_suggestion,
    )
    return RecommendResult(rows=out, state=new_state, late=late)


def cooldown_mask(starts: np.ndarray, t: np.ndarray, cooldown_ns: int,
                  before: np.ndarray | None = None) -> np.ndarray:
    """Which approaches are emitted, greedily in time order ("only emitted suggestions
    count"): rows are sorted by group then time, ``starts`` marks each group's first row,
    ``t`` is epoch ns, ``before`` (optional) the time of the group's last suggestion before
    these rows, on the group's first row (``int64`` minimum for none).

    Shared by the pandas engine and the Spark engine's partition kernel. The scan is
    sequential only where it must be: rows at least ``cooldown`` after the group's
    previous row are emitted without looking further back.
    """
    n = len(t)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    t = np.asarray(t, dtype=np.int64)
    tprev = np.empty(n, dtype=np.int64)
    tprev[0] = 0
    tprev[1:] = t[:-1]
    # a group's first row: compare with the prior suggestion (or emit); others: clear
    # of the previous row by the cooldown -> emitted whatever happened before
    free = ~starts & (t - tprev >= cooldown_ns)
    if before is None:
        free |= starts
    else:
        lim = np.iinfo(np.int64).min
        b = np.asarray(before, dtype=np.int64)
        free |= starts & ((b == lim) | (t - np.where(b == lim, 0, b) >= cooldown_ns))
    keep[free] = True
    todo = np.flatnonzero(~free)  # rows within the cooldown of their previous row
    if len(todo) == 0:
        return keep
    # the dense runs, in order: each row's last emitted time in its group is either the
    # row before it (emitted, as every row not in todo) or the running value of the scan
    tl = t.tolist()
    st = starts.tolist()
    bl = None if before is None else np.asarray(before, dtype=np.int64).tolist()
    running = 0
    prev = -2
    for i in todo.tolist():
        if st[i]:  # only with a prior suggestion less than the cooldown before
            last = bl[i] if bl is not None else tl[i]
        elif prev == i - 1:
            last = running
        else:
            last = tl[i - 1]
        if tl[i] - last >= cooldown_ns:
            keep[i] = True
            running = tl[i]
        else:
            running = last
        prev = i
    return keep


def _apply_cooldown(approaches: pd.DataFrame, last_suggestion: pd.DataFrame,
                    cooldown: pd.Timedelta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep an approach unless its (user, establishment) got a suggestion less than
    ``cooldown`` before (greedy in time order: only emitted suggestions count)."""
    if approaches.empty:
        return approaches, last_suggestion
    a = approaches.sort_values(["user_id", "establishment_id", "ts"], kind="mergesort").reset_index(drop=True)
    prior = pd.Series(
        tb.epoch_ns(last_suggestion["ts"]),
        index=pd.MultiIndex.from_arrays([last_suggestion["user_id"], last_suggestion["establishment_id"]]),
    ) if len(last_suggestion) else None
    t = tb.epoch_ns(a["ts"])
    u = a["user_id"].to_numpy()
    e = a["establishment_id"].to_numpy()
    starts = np.ones(len(a), dtype=bool)
    starts[1:] = (u[1:] != u[:-1]) | (e[1:] != e[:-1])
    before = None
    if prior is not None:
        first = np.flatnonzero(starts)
        found = prior.reindex(pd.MultiIndex.from_arrays([u[first], e[first]]))
        before = np.full(len(a), np.iinfo(np.int64).min, dtype=np.int64)
        before[first] = found.fillna(np.iinfo(np.int64).min).to_numpy(np.int64)
    keep = cooldown_mask(starts, t, cooldown.value, before)
    emitted = a[keep]
    latest = emitted.groupby(["user_id", "establishment_id"], sort=False).tail(1)[["user_id", "establishment_id", "ts"]]
    if len(last_suggestion):
        key = pd.MultiIndex.from_frame(latest[["user_id", "establishment_id"]])
        old = last_suggestion[~pd.MultiIndex.from_frame(last_suggestion[["user_id", "establishment_id"]]).isin(key)]
        latest = pd.concat([old, latest], ignore_index=True)
    return emitted, latest.reset_index(drop=True)


def approach_places(establishments: pd.DataFrame, ad_establishments: pd.Series | np.ndarray,
                    radius_m: float) -> PlaceIndex:
    """The establishments that have at least one ad (``ad_establishments``: the ads'
    establishment ids), indexed for the approach radius.

    A suggestion names an ad of the establishment approached, so the others can never
    yield one: searching only these gives the same rows for far fewer distance checks
    (in the generated cities, about one establishment in fourteen has an ad).
    """
    has_ad = establishments["establishment_id"].isin(pd.unique(np.asarray(ad_establishments)))
    return place_index(establishments[has_ad.to_numpy()].reset_index(drop=True), radius_m)


def recommendations(locations: pd.DataFrame, establishments: pd.DataFrame, ads: pd.DataFrame,
                    campaigns: pd.DataFrame, interactions: pd.DataFrame, *, tz: str,
                    params: RecommendParams) -> pd.DataFrame:
    """Batch form of the real-time job: every suggestion the stream would emit."""
    places = approach_places(establishments, ads["establishment_id"], params.approach_radius_m)
    ranked = ranked_ads(ads, campaigns, ad_counts(interactions))
    return recommend(locations, places, ranked, tz=tz, params=params).rows
