"""One chunk of users: their trajectories, their ad interactions, the visits those cause.

A chunk is self-contained (its own users, its own random stream ``[seed, 2, chunk]``),
so chunks can be generated in any order or in parallel and the output stays
byte-identical for a seed. The order of work inside a chunk:

1. users, and their planned trips to establishments (category by weekday preference,
   hour by the category's rhythm, place near home or work, often a "regular" place);
2. pings of those trips, and idle pings at home or work outside trips;
3. ad views on those pings (category by period preference and hourly rhythm, an active
   ad of that category) and clicks (the campaign's planted CTR);
4. trips caused by interactions: after a view (rarely) or a click (often) the user
   heads to the ad's establishment within a few hours - the planted lift;
5. pings (and views) of those trips; trimming or topping up to the exact record count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adanalytics.synth.catalog import CATEGORY_RHYTHM, N_CATEGORIES
from adanalytics.synth.city import Campaigns, City, Establishments
from adanalytics.synth.movement import (
    EXPECTED_DWELL_RECORDS,
    KIND_AD_TRIP,
    KIND_DWELL,
    Busy,
    BusySlots,
    Pings,
    Trips,
    add_gps_noise,
    drop_overlapping,
    idle_pings,
    plan_trips,
    trip_pings,
)
from adanalytics.synth.people import HOURLY_MULTIPLIER, RowSampler, Users, make_users
from adanalytics.synth.timeline import DAY_S, Timeline

#: Random stream ids (the first entropy word is the seed).
STREAM_CITY, STREAM_CAMPAIGNS, STREAM_CHUNK, STREAM_APPROACH = 1, 3, 2, 4

#: Share of a user's records spent on (spontaneous) trips to establishments.
TRIP_SHARE = 0.25
#: Mean pings per trip (calibrates the number of trips for a records budget).
MEAN_TRIP_PINGS = 13.5
#: Share of records left free for trips caused by ads.
INDUCED_RESERVE = 0.03
#: Probability that a view / a click sends the user to the ad's establishment, when the
#: user is right there; it decays as exp(-distance / TRIP_DISTANCE_SCALE_M).
P_TRIP_AFTER_VIEW = 0.001
P_TRIP_AFTER_CLICK = 0.12
TRIP_DISTANCE_SCALE_M = 5_000.0
#: Delay between the interaction and leaving for the establishment, seconds.
TRIP_DELAY_S = (600.0, 4.5 * 3600.0)
#: Share of spontaneous trips to the user's regular place of the category.
REGULAR_PLACE = 0.5
#: Candidates compared when choosing a place (the nearest-ish wins).
PLACE_CANDIDATES = 4
#: Records generated at once inside a chunk (small arrays run faster).
BATCH_RECORDS = 250_000
#: Clicks follow their view by this many seconds.
CLICK_DELAY_S = (3.0, 60.0)

#: Draws the hour at which an establishment of a category is visited.
_HOUR_SAMPLER = RowSampler(CATEGORY_RHYTHM)


@dataclass(frozen=True)
class World:
    """What every chunk shares (read-only)."""

    seed: int
    timeline: Timeline
    city: City
    est: Establishments
    camp: Campaigns


@dataclass
class ChunkResult:
    """Rows of a chunk, ready to be written, and what truth.json needs from it."""

    index: int
    n_users: int
    first_user: int
    loc_user: np.ndarray
    loc_ts_us: np.ndarray
    loc_lat: np.ndarray
    loc_lon: np.ndarray
    #: rows of month m are [ptr[m], ptr[m + 1]) (rows are sorted by month, user, time)
    loc_month_ptr: np.ndarray
    int_user: np.ndarray
    int_ts_us: np.ndarray
    int_ad: np.ndarray
    int_click: np.ndarray
    int_month_ptr: np.ndarray
    persona: np.ndarray
    preferred_period: np.ndarray
    preferred_weekday: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class Views:
    user: np.ndarray
    t: np.ndarray
    ad: np.ndarray
    click: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


class _ViewModel:
    """Who sees which ad when: per (user, local hour) category weights of one chunk."""

    def __init__(self, world: World, users: Users) -> None:
        self.world = world
        self.users = users
        hour = np.arange(24)
        # (user, hour, category): period preference times the hourly rhythm
        w = users.period_w[:, hour // 6, :] * HOURLY_MULTIPLIER[None, :, :]
        self.sampler = RowSampler(w)

    def views(self, rng: np.random.Generator, pings: Pings, eligible: np.ndarray | None) -> Views:
        """Ad views while the app reports a position, and whether each was clicked."""
        draw = rng.random(len(pings), dtype=np.float32) < self.users.p_view[pings.user]
        if eligible is not None:
            draw &= eligible
        m = np.flatnonzero(draw)
        user = pings.user[m]
        t = pings.t[m] + rng.uniform(0.0, 90.0, len(m))
        hour = Timeline.hour_of(t)
        cat = self.sampler.sample(user * 24 + hour, rng.random(len(m)))
        camp = self.world.camp
        ad = camp.pick_ads(self.world.timeline.day_of(t), cat, rng.random(len(m)))
        click = rng.random(len(m)) < camp.ctr[camp.ad_campaign[ad]]
        return Views(user=user, t=t, ad=ad, click=click, x=pings.x[m], y=pings.y[m])


def _pick_places(
    rng: np.random.Generator,
    est: Establishments,
    cat: np.ndarray,
    ox: np.ndarray,
    oy: np.ndarray,
    k: int,
) -> np.ndarray:
    """An establishment of category ``cat`` for each row: the nearest-ish of ``k`` random ones."""
    lo = est.cat_ptr[cat]
    cnt = est.cat_ptr[cat + 1] - lo
    u = rng.random((len(cat), k))
    pick = est.by_category[
        np.minimum(lo[:, None] + (u * cnt[:, None]).astype(np.int64), len(est) - 1)
    ]
    # a city without this category: any establishment
    none = cnt == 0
    if none.any():
        pick[none] = rng.integers(0, len(est), (int(none.sum()), k))
    score = np.hypot(est.x[pick] - ox[:, None], est.y[pick] - oy[:, None])
    score *= rng.lognormal(0.0, 0.5, score.shape)
    return pick[np.arange(len(cat)), score.argmin(axis=1)]


def _spontaneous_trips(rng: np.random.Generator, world: World, users: Users) -> Trips:
    tl, est = world.timeline, world.est
    n_users = len(users)
    n_trips = rng.poisson(users.budget * TRIP_SHARE / MEAN_TRIP_PINGS)
    user = np.repeat(np.arange(n_users), n_trips)
    n = len(user)
    day = rng.integers(0, tl.n_days, n)
    weekday = tl.weekday_of_day(day)
    cat = RowSampler(users.weekday_w).sample(user * 7 + weekday, rng.random(n))
    hour = _HOUR_SAMPLER.sample(cat, rng.random(n))
    at_work = users.has_work[user] & (weekday < 5) & (hour >= 9) & (hour < 18)
    ox = np.where(at_work, users.work_x[user], users.home_x[user])
    oy = np.where(at_work, users.work_y[user], users.home_y[user])
    back_to_work = at_work & (hour < 17)
    rx = np.where(back_to_work, users.work_x[user], users.home_x[user])
    ry = np.where(back_to_work, users.work_y[user], users.home_y[user])

    # each user has a regular place per category (near home), visited half the time
    regular = _pick_places(
        rng,
        est,
        np.tile(np.arange(N_CATEGORIES), n_users),
        np.repeat(users.home_x, N_CATEGORIES),
        np.repeat(users.home_y, N_CATEGORIES),
        4 * PLACE_CANDIDATES,
    ).reshape(n_users, N_CATEGORIES)
    dest = np.where(
        rng.random(n) < REGULAR_PLACE,
        regular[user, cat],
        _pick_places(rng, est, cat, ox, oy, PLACE_CANDIDATES),
    )
    trips = plan_trips(rng, est, user, np.zeros(n), ox, oy, dest, rx, ry)
    # the rhythm says when people are *at* the place: arrive then
    arrive = day * float(DAY_S) + hour * 3600.0 + rng.uniform(0.0, 3600.0, n)
    shift = arrive - trips.arrive
    for name in ("depart", "arrive", "leave", "end"):
        setattr(trips, name, getattr(trips, name) + shift)
    return trips


def month_order(
    tl: Timeline, user: np.ndarray, ts_us: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Order rows by (local month, user, time); and where each month starts in that order.

    Months first so that every month file is a zero-copy slice of the sorted arrays.
    """
    month = tl.month_index(ts_us)
    ms = (ts_us - int(tl.month_bounds_us[0])) // 1000
    span_ms = (int(tl.month_bounds_us[-1]) - int(tl.month_bounds_us[0])) // 1000 + 1
    if len(tl.months) * max(n_users, 1) * span_ms >= 2**63:  # pragma: no cover - decades of data
        msg = "chunk too large for a 64-bit sort key; use fewer months or users per chunk"
        raise ValueError(msg)
    key = (month * n_users + user.astype(np.int64)) * span_ms + ms
    order = np.argsort(key)
    ptr = np.searchsorted(month[order], np.arange(len(tl.months) + 1))
    return order, ptr.astype(np.int64)


def generate_chunk(
    world: World, index: int, first_user: int, n_users: int, records: int
) -> ChunkResult:
    """Generate chunk ``index``: ``n_users`` users with exactly ``records`` location records.

    A chunk (one file per month) is computed in batches of about ``BATCH_RECORDS``
    records, each with its own random stream ``[seed, 2, chunk, batch]``: small arrays
    stay in the CPU caches. Batches hold consecutive users, so concatenating their
    month slices keeps every month sorted by (user, time).

    Parameters
    ----------
    world:
        The shared city, campaigns and timeline.
    index:
        Chunk number (selects the random streams).
    first_user:
        Global index of the chunk's first user (ids are ``first_user + 1 ...``).
    n_users, records:
        Users in the chunk and location records they produce together.
    """
    n_batches = max(1, min(n_users, -(-records // BATCH_RECORDS)))
    batch_users = np.full(n_batches, n_users // n_batches, dtype=np.int64)
    batch_users[: n_users % n_batches] += 1
    share = records * batch_users / max(n_users, 1)
    batch_records = np.floor(share).astype(np.int64)
    batch_records[
        np.argsort(batch_records - share, kind="stable")[: records - int(batch_records.sum())]
    ] += 1
    parts = []
    offset = 0
    for b in range(n_batches):
        rng = np.random.default_rng([world.seed, STREAM_CHUNK, index, b])
        part = _generate_batch(world, rng, int(batch_users[b]), int(batch_records[b]))
        part.loc_user += offset
        part.int_user += offset
        offset += int(batch_users[b])
        parts.append(part)
    if len(parts) == 1:
        merged = parts[0]
    else:
        merged = ChunkResult(
            index=index,
            n_users=n_users,
            first_user=first_user,
            **{
                name: _concat_by_month(
                    [getattr(p, name) for p in parts], [getattr(p, ptr) for p in parts]
                )
                for ptr, names in _MONTHLY.items()
                for name in names
            },
            loc_month_ptr=np.sum([p.loc_month_ptr for p in parts], axis=0),
            int_month_ptr=np.sum([p.int_month_ptr for p in parts], axis=0),
            persona=np.concatenate([p.persona for p in parts]),
            preferred_period=np.concatenate([p.preferred_period for p in parts]),
            preferred_weekday=np.concatenate([p.preferred_weekday for p in parts]),
            stats={k: sum(p.stats[k] for p in parts) for k in parts[0].stats},
        )
    merged.index, merged.first_user, merged.n_users = index, first_user, n_users
    return merged


#: Row arrays of a result, grouped by the month pointer that slices them.
_MONTHLY: dict[str, tuple[str, ...]] = {
    "loc_month_ptr": ("loc_user", "loc_ts_us", "loc_lat", "loc_lon"),
    "int_month_ptr": ("int_user", "int_ts_us", "int_ad", "int_click"),
}


def _concat_by_month(arrays: list[np.ndarray], ptrs: list[np.ndarray]) -> np.ndarray:
    """Concatenate month by month: month 0 of every batch, then month 1, ..."""
    n_months = len(ptrs[0]) - 1
    return np.concatenate(
        [a[p[m] : p[m + 1]] for m in range(n_months) for a, p in zip(arrays, ptrs, strict=True)]
    )


def _generate_batch(
    world: World, rng: np.random.Generator, n_users: int, records: int
) -> ChunkResult:
    tl, est, camp = world.timeline, world.est, world.camp
    span = float((tl.n_days + 60) * DAY_S)  # stride of the (user, time) composite keys
    users = make_users(rng, world.city, est, n_users, records)
    viewer = _ViewModel(world, users)

    # 1-2: spontaneous trips and idle pings (none while on a trip)
    trips = _spontaneous_trips(rng, world, users)
    trips = trips.take(drop_overlapping(trips, span))
    moving = trip_pings(rng, est, trips)
    per_user = np.bincount(moving.user, minlength=n_users)
    idle_budget = np.maximum(users.budget * (1.0 - INDUCED_RESERVE) - per_user, 0.0)
    idle = idle_pings(
        rng, tl, idle_budget, users.home_x, users.home_y, users.work_x, users.work_y, users.has_work
    )
    busy = Busy.of(trips, span)
    slots = BusySlots(n_users, tl.n_days).mark(trips)
    base = Pings.concat([moving, idle])
    # rows are filtered with masks and taken once at the end (fewer copies)
    valid = np.ones(len(base), dtype=bool)
    valid[len(moving) :] = ~slots.contains(idle.user, idle.t)

    # 3: views and clicks
    views = viewer.views(rng, base, valid)

    # 4: trips caused by interactions
    target = camp.ad_establishment[views.ad]
    away = np.hypot(est.x[target] - views.x, est.y[target] - views.y)
    p_trip = np.where(views.click, P_TRIP_AFTER_CLICK, P_TRIP_AFTER_VIEW)
    p_trip *= np.exp(-away / TRIP_DISTANCE_SCALE_M)
    go = np.flatnonzero(rng.random(len(views)) < p_trip)
    depart = views.t[go] + rng.uniform(*TRIP_DELAY_S, len(go))
    vu = views.user[go]
    induced = plan_trips(
        rng,
        est,
        vu,
        depart,
        views.x[go],
        views.y[go],
        target[go],
        users.home_x[vu],
        users.home_y[vu],
    )
    n_planned = len(induced)
    ok = (induced.depart < tl.span_s) & ~busy.overlaps(induced.user, induced.depart, induced.end)
    induced = induced.take(np.flatnonzero(ok))
    induced = induced.take(drop_overlapping(induced, span))
    # (exact overlaps with spontaneous trips were excluded above; idle pings go by slot)
    valid[len(moving) :] &= ~BusySlots(n_users, tl.n_days).mark(induced).contains(idle.user, idle.t)

    # 5: their pings and views; then the exact record count
    induced_pings = trip_pings(rng, est, induced)
    induced_pings.kind += KIND_AD_TRIP
    views2 = viewer.views(rng, induced_pings, None)
    pings = Pings.concat([base, induced_pings])
    valid = np.concatenate([valid, np.ones(len(induced_pings), dtype=bool)])
    add_gps_noise(rng, pings)
    ts = tl.to_utc_us(pings.t)
    valid &= tl.in_period(ts)
    n_valid = int(np.count_nonzero(valid))

    slots.mark(induced)
    for _ in range(20):
        deficit = records - n_valid
        if deficit <= 0:
            break
        extra = idle_pings(
            rng,
            tl,
            (deficit * 1.3 + 10.0) * users.budget / users.budget.sum(),
            users.home_x,
            users.home_y,
            users.work_x,
            users.work_y,
            users.has_work,
        )
        add_gps_noise(rng, extra)
        ets = tl.to_utc_us(extra.t)
        ok_extra = tl.in_period(ets) & ~slots.contains(extra.user, extra.t)
        surplus = int(np.count_nonzero(ok_extra)) - deficit
        if surplus > 0:
            ok_extra[rng.choice(np.flatnonzero(ok_extra), size=surplus, replace=False)] = False
        pings = Pings.concat([pings, extra])
        ts = np.concatenate([ts, ets])
        valid = np.concatenate([valid, ok_extra])
        n_valid = int(np.count_nonzero(valid))
    idx = np.flatnonzero(valid)
    if len(idx) > records:  # thin out: a few pings never reached the server
        drop = rng.choice(len(idx), size=len(idx) - records, replace=False)
        idx = np.delete(idx, drop)

    order, loc_ptr = month_order(tl, pings.user[idx], ts[idx], n_users)
    idx = idx[order]
    pings, ts = pings.take(idx), ts[idx]
    lat, lon = world.city.to_latlon(pings.x, pings.y)

    # interactions: views, plus a click row shortly after each clicked view
    v_user = np.concatenate([views.user, views2.user])
    v_ts = tl.to_utc_us(np.concatenate([views.t, views2.t]))
    v_ad = np.concatenate([views.ad, views2.ad])
    v_click = np.concatenate([views.click, views2.click])
    c = np.flatnonzero(v_click)
    c_ts = v_ts[c] + (rng.uniform(*CLICK_DELAY_S, len(c)) * 1e3).astype(np.int64) * 1000
    i_user = np.concatenate([v_user, v_user[c]])
    i_ts = np.concatenate([v_ts, c_ts])
    i_ad = np.concatenate([v_ad, v_ad[c]])
    i_click = np.concatenate([np.zeros(len(v_user), bool), np.ones(len(c), bool)])
    keep = np.flatnonzero(tl.in_period(i_ts))
    order, int_ptr = month_order(tl, i_user[keep], i_ts[keep], n_users)
    order = keep[order]

    kind = pings.kind
    dwell = (kind == KIND_DWELL) | (kind == KIND_DWELL + KIND_AD_TRIP)
    stats = {
        "spontaneous_trips": len(trips),
        "ad_trips_planned": n_planned,
        "ad_trips": len(induced),
        "dwell_records": int(np.count_nonzero(dwell)),
        "ad_trip_dwell_records": int(np.count_nonzero(kind == KIND_DWELL + KIND_AD_TRIP)),
        "ad_trip_records": int(np.count_nonzero(kind >= KIND_AD_TRIP)),
    }
    return ChunkResult(
        index=0,
        n_users=n_users,
        first_user=0,
        loc_user=pings.user.astype(np.int32),
        loc_ts_us=ts,
        loc_lat=lat,
        loc_lon=lon,
        loc_month_ptr=loc_ptr,
        int_user=i_user[order].astype(np.int32),
        int_ts_us=i_ts[order],
        int_ad=i_ad[order],
        int_click=i_click[order],
        int_month_ptr=int_ptr,
        persona=users.persona,
        preferred_period=users.period_w.argmax(axis=2),
        # what question 6 should find: trip preference times records per dwell
        preferred_weekday=(users.weekday_w * EXPECTED_DWELL_RECORDS).argmax(axis=2),
        stats=stats,
    )


def chunk_summary(result: ChunkResult) -> dict[str, Any]:
    """Counts of a chunk (for progress and truth.json)."""
    return {
        "locations": len(result.loc_user),
        "interactions": len(result.int_user),
        "clicks": int(result.int_click.sum()),
        **result.stats,
    }
