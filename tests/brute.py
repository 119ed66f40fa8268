"""Brute-force oracles of SPEC §3, independent of the engines' code paths.

Plain Python over the dict-literal tables: every location record is compared with every
establishment (``geo.haversine_m``, no grid), every visit loops over the user's
interactions (no as-of join), local time comes from :mod:`zoneinfo` (not pandas), and
recommendations replay each user's events one by one. Slow and obvious on purpose; the
inputs must be valid (the property tests generate only valid data).

Each function returns ``{column: [values]}`` in the output's column order and key order.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from adanalytics.geo import haversine_m

Z = 1.959963984540054
PERIODS = ["night", "morning", "afternoon", "evening"]  # [0,6), [6,12), [12,18), [18,24)

Data = dict[str, dict[str, list[Any]]]


def rows(data: Data, table: str) -> list[dict[str, Any]]:
    cols = data[table]
    n = len(next(iter(cols.values()))) if cols else 0
    return [{c: cols[c][i] for c in cols} for i in range(n)]


def instant(ts: Any) -> datetime:
    """ISO text (naive = UTC) or epoch milliseconds -> aware UTC datetime."""
    if isinstance(ts, int):
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ts)
    t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def local(ts: Any, tz: str) -> datetime:
    return instant(ts).astimezone(ZoneInfo(tz))


def month(ts: Any, tz: str) -> str:
    t = local(ts, tz)
    return f"{t.year:04d}-{t.month:02d}"


def period(ts: Any, tz: str) -> str:
    return PERIODS[local(ts, tz).hour // 6]


def distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(haversine_m(lat1, lon1, lat2, lon2))


def _columns(records: list[tuple], names: list[str]) -> dict[str, list[Any]]:
    return {n: [r[i] for r in records] for i, n in enumerate(names)}


# --- visits ---------------------------------------------------------------------------

def visit_pairs(data: Data, radius_m: float) -> list[dict[str, Any]]:
    """Every (record, establishment) closer than ``radius_m`` - all pairs compared."""
    out = []
    ests = rows(data, "establishments")
    for r in rows(data, "locations"):
        for e in ests:
            d = distance(r["lat"], r["lon"], e["lat"], e["lon"])
            if d < radius_m:
                out.append({"user_id": r["user_id"], "ts": r["ts"], "d": d,
                            "establishment_id": e["establishment_id"], "category": e["category"]})
    return out


def visits(data: Data, *, by: str, tz: str, radius_m: float = 50.0) -> dict[str, list[Any]]:
    count: dict[tuple, int] = defaultdict(int)
    users: dict[tuple, set] = defaultdict(set)
    for p in visit_pairs(data, radius_m):
        key = (p["establishment_id"],) + ((month(p["ts"], tz),) if by == "month" else ())
        count[key] += 1
        users[key].add(p["user_id"])
    recs = [(*k, count[k], len(users[k])) for k in sorted(count)]
    names = ["establishment_id", *(["month"] if by == "month" else []), "visits", "visitors"]
    return _columns(recs, names)


def attribution(data: Data, *, by: str, tz: str, window: timedelta = timedelta(hours=6),
                radius_m: float = 50.0) -> dict[str, list[Any]]:
    ad_est = {a["ad_id"]: a["establishment_id"] for a in rows(data, "ads")}
    inter = rows(data, "interactions")
    n: dict[tuple, int] = defaultdict(int)
    hit: dict[tuple, int] = defaultdict(int)
    for p in visit_pairs(data, radius_m):
        key = (p["establishment_id"],) + ((month(p["ts"], tz),) if by == "month" else ())
        n[key] += 1
        t = instant(p["ts"])
        for i in inter:
            if i["user_id"] != p["user_id"] or ad_est[i["ad_id"]] != p["establishment_id"]:
                continue
            if timedelta(0) <= t - instant(i["ts"]) <= window:
                hit[key] += 1
                break
    recs = [(*k, n[k], hit[k], hit[k] / n[k]) for k in sorted(n)]
    names = ["establishment_id", *(["month"] if by == "month" else []), "visits",
             "attributed_visits", "ratio"]
    return _columns(recs, names)


# --- ctr and category_hourly ------------------------------------------------------------

def wilson(clicks: int, views: int) -> tuple[float, float]:
    p = min(clicks / views, 1.0)
    n = views
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return centre - half, centre + half


def _action(a: str) -> str:
    return a.strip().lower()


def ctr(data: Data, *, by: str, tz: str) -> dict[str, list[Any]]:
    camp = {a["ad_id"]: a["campaign_id"] for a in rows(data, "ads")}
    views: dict[tuple, int] = defaultdict(int)
    clicks: dict[tuple, int] = defaultdict(int)
    for i in rows(data, "interactions"):
        key = (camp[i["ad_id"]],) + ((month(i["ts"], tz),) if by == "month" else ())
        if _action(i["action"]) == "click":
            clicks[key] += 1
        else:
            views[key] += 1
    recs = []
    for k in sorted(set(views) | set(clicks)):
        v, c = views[k], clicks[k]
        lo, hi = wilson(c, v) if v else (None, None)
        recs.append((*k, v, c, c / v if v else None, lo, hi))
    names = ["campaign_id", *(["month"] if by == "month" else []), "views", "clicks", "ctr",
             "ctr_low", "ctr_high"]
    return _columns(recs, names)


def category_hourly(data: Data, *, by: str, tz: str) -> dict[str, list[Any]]:
    cat = {a["ad_id"]: a["category"] for a in rows(data, "ads")}
    inter = rows(data, "interactions")
    views: dict[tuple, int] = defaultdict(int)
    clicks: dict[tuple, int] = defaultdict(int)
    for i in inter:
        key = (cat[i["ad_id"]],) + ((month(i["ts"], tz),) if by == "month" else ())
        key = (*key, local(i["ts"], tz).hour)
        if _action(i["action"]) == "click":
            clicks[key] += 1
        else:
            views[key] += 1
    months = sorted({month(i["ts"], tz) for i in inter}) if by == "month" else [None]
    recs = []
    for c in sorted(set(cat.values())):
        for m in months:
            for h in range(24):
                key = (c, h) if m is None else (c, m, h)
                recs.append((*key, views[key] + clicks[key], views[key], clicks[key]))
    names = ["category", *(["month"] if by == "month" else []), "hour", "interactions",
             "views", "clicks"]
    return _columns(recs, names)


# --- profiles ---------------------------------------------------------------------------

def _profile(counts: dict[tuple, int], slot_order: Any) -> list[tuple]:
    totals: dict[tuple, int] = defaultdict(int)
    for (u, s, _c), n in counts.items():
        totals[(u, s)] += n
    keys = sorted(counts, key=lambda k: (k[0], slot_order(k[1]), k[2]))
    return [(*k, counts[k], counts[k] / totals[(k[0], k[1])]) for k in keys]


def _preferred(profile: list[tuple]) -> list[tuple]:
    best: dict[tuple, tuple] = {}
    for r in profile:
        slot = (r[0], r[1])
        if slot not in best or (-r[3], r[2]) < (-best[slot][3], best[slot][2]):
            best[slot] = r
    return [best[s] for s in best]  # profile is in key order, so slots are too


def interaction_profile(data: Data, *, tz: str) -> dict[str, list[Any]]:
    cat = {a["ad_id"]: a["category"] for a in rows(data, "ads")}
    counts: dict[tuple, int] = defaultdict(int)
    for i in rows(data, "interactions"):
        counts[(i["user_id"], period(i["ts"], tz), cat[i["ad_id"]])] += 1
    recs = _profile(counts, PERIODS.index)
    return _columns(recs, ["user_id", "period", "category", "interactions", "share"])


def preferred_ad_category(data: Data, *, tz: str) -> dict[str, list[Any]]:
    cat = {a["ad_id"]: a["category"] for a in rows(data, "ads")}
    counts: dict[tuple, int] = defaultdict(int)
    for i in rows(data, "interactions"):
        counts[(i["user_id"], period(i["ts"], tz), cat[i["ad_id"]])] += 1
    recs = _preferred(_profile(counts, PERIODS.index))
    return _columns(recs, ["user_id", "period", "category", "interactions", "share"])


def _visit_counts(data: Data, tz: str, radius_m: float) -> dict[tuple, int]:
    counts: dict[tuple, int] = defaultdict(int)
    for p in visit_pairs(data, radius_m):
        counts[(p["user_id"], local(p["ts"], tz).weekday(), p["category"])] += 1
    return counts


def visit_profile(data: Data, *, tz: str, radius_m: float = 50.0) -> dict[str, list[Any]]:
    recs = _profile(_visit_counts(data, tz, radius_m), int)
    return _columns(recs, ["user_id", "weekday", "category", "visits", "share"])


def preferred_establishment_category(data: Data, *, tz: str,
                                     radius_m: float = 50.0) -> dict[str, list[Any]]:
    recs = _preferred(_profile(_visit_counts(data, tz, radius_m), int))
    return _columns(recs, ["user_id", "weekday", "category", "visits", "share"])


# --- recommendations --------------------------------------------------------------------

def recommendations(data: Data, *, tz: str, approach_radius_m: float = 500.0,
                    max_gap: timedelta = timedelta(minutes=15), min_closing_m: float = 10.0,
                    cooldown: timedelta = timedelta(hours=1)) -> dict[str, list[Any]]:
    views: dict[Any, int] = defaultdict(int)
    clicks: dict[Any, int] = defaultdict(int)
    for i in rows(data, "interactions"):
        if _action(i["action"]) == "click":
            clicks[i["ad_id"]] += 1
        else:
            views[i["ad_id"]] += 1
    campaigns = {c["campaign_id"]: (date.fromisoformat(str(c["start_date"])[:10]),
                                    date.fromisoformat(str(c["end_date"])[:10]))
                 for c in rows(data, "campaigns")}

    def rank(ad_id: Any) -> tuple:
        v = views[ad_id]
        return (1, 0.0, ad_id) if v == 0 else (0, -clicks[ad_id] / v, ad_id)

    ads = rows(data, "ads")
    ests = rows(data, "establishments")
    events: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows(data, "locations"):
        events[r["user_id"]].append(r)
    out = []
    for user, evs in events.items():
        evs = sorted(evs, key=lambda r: (instant(r["ts"]), r["lat"], r["lon"]))
        last_sent: dict[Any, datetime] = {}
        for prev, cur in itertools.pairwise(evs):
            t = instant(cur["ts"])
            if t - instant(prev["ts"]) > max_gap:
                continue
            day = local(cur["ts"], tz).date()
            for e in ests:
                eid = e["establishment_id"]
                d_k = distance(cur["lat"], cur["lon"], e["lat"], e["lon"])
                d_prev = distance(prev["lat"], prev["lon"], e["lat"], e["lon"])
                if not (d_k < approach_radius_m and d_prev - d_k >= min_closing_m):
                    continue
                active = [a["ad_id"] for a in ads if a["establishment_id"] == eid
                          and campaigns[a["campaign_id"]][0] <= day <= campaigns[a["campaign_id"]][1]]
                if not active:
                    continue
                if eid in last_sent and t - last_sent[eid] < cooldown:
                    continue
                last_sent[eid] = t
                out.append((user, eid, min(active, key=rank), t, d_k))
    out.sort(key=lambda r: (r[0], r[3], r[1]))
    return _columns(out, ["user_id", "establishment_id", "ad_id", "ts", "distance_m"])
