"""Trajectories: trips to establishments, dwelling, idle pings at home or work.

All vectorised over every trip / ping of a chunk of users. A trip is: leave an origin,
move (pings every one to four minutes along a slightly bent line), dwell at the
establishment (pings every few minutes, within metres of it), and sometimes report the
way back. Idle pings come in short app sessions at home or at work, rare at night.
Positions are local metres; GPS noise is added once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adanalytics.synth.catalog import APP_USAGE_RHYTHM, DWELL_MINUTES, DWELL_PING_GAP_S
from adanalytics.synth.city import Establishments
from adanalytics.synth.timeline import DAY_S, Timeline

#: Standard deviation of GPS noise, metres: outdoors on the move, in a shop (the phone
#: also moves about the premises), indoors at home or work; and of the rare outliers.
GPS_NOISE_M = 5.0
DWELL_NOISE_M = 6.5
IDLE_NOISE_M = 9.0
GPS_OUTLIER_M = 30.0
GPS_OUTLIER_SHARE = 0.03
#: Trips shorter than this are walked.
WALK_MAX_M = 1_200.0
#: Share of trips whose way back is reported.
RETURN_REPORTED = 0.6
#: Most pings in one moving leg / one dwell.
MAX_MOVE_PINGS = 30
MAX_DWELL_PINGS = 48

#: Expected location records of one dwell at an establishment of each category (a
#: lognormal(0, 0.35) stay, pings at the category's gap times uniform(0.7, 1.3), plus one).
#: Visits are counted in records, so a bar evening weighs more than a pharmacy stop.
EXPECTED_DWELL_RECORDS = np.minimum(
    1.0
    + DWELL_MINUTES * 60.0 * np.exp(0.35**2 / 2.0) / DWELL_PING_GAP_S * (np.log(1.3 / 0.7) / 0.6),
    MAX_DWELL_PINGS,
)

#: Ping kinds (kept for statistics in truth.json).
KIND_MOVE, KIND_DWELL, KIND_IDLE = 0, 1, 2
#: Added to the kind of pings of trips caused by an ad.
KIND_AD_TRIP = 4


@dataclass
class Pings:
    """Location pings of a chunk, in local seconds and local metres."""

    user: np.ndarray
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @staticmethod
    def concat(parts: list[Pings]) -> Pings:
        return Pings(*(np.concatenate([getattr(p, f) for p in parts]) for f in _PING_FIELDS))

    def take(self, idx: np.ndarray) -> Pings:
        return Pings(*(getattr(self, f)[idx] for f in _PING_FIELDS))


_PING_FIELDS = ("user", "t", "x", "y", "kind")


@dataclass
class Trips:
    """Trips of a chunk (one row each): from an origin to an establishment and back."""

    user: np.ndarray
    depart: np.ndarray
    arrive: np.ndarray
    leave: np.ndarray
    end: np.ndarray
    ox: np.ndarray
    oy: np.ndarray
    dest: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    report_return: np.ndarray
    walk: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> Trips:
        return Trips(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})

    @staticmethod
    def concat(parts: list[Trips]) -> Trips:
        return Trips(
            **{
                f: np.concatenate([getattr(p, f) for p in parts])
                for f in Trips.__dataclass_fields__
            }
        )


def group_cumsum(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at every group (groups are consecutive runs of ``sizes``)."""
    cs = np.cumsum(values)
    sizes = sizes[sizes > 0]
    if len(sizes) == 0:
        return cs
    starts = np.cumsum(sizes) - sizes
    before = cs[starts] - values[starts]
    return cs - np.repeat(before, sizes)


def sorted_fractions(rng: np.random.Generator, n: np.ndarray) -> np.ndarray:
    """For each group of ``n[i]`` pings, sorted uniform fractions in (0, 1) (order statistics)."""
    gaps = rng.standard_exponential(int(n.sum()) + len(n), dtype=np.float32).astype(np.float64)
    cs = group_cumsum(gaps, n + 1)
    ends = np.cumsum(n + 1) - 1
    total = np.repeat(cs[ends], n + 1)
    keep = np.ones(len(cs), dtype=bool)
    keep[ends] = False
    return (cs / total)[keep]


def plan_trips(
    rng: np.random.Generator,
    est: Establishments,
    user: np.ndarray,
    depart: np.ndarray,
    ox: np.ndarray,
    oy: np.ndarray,
    dest: np.ndarray,
    rx: np.ndarray,
    ry: np.ndarray,
) -> Trips:
    """Timing of trips leaving ``(ox, oy)`` at ``depart`` for establishment ``dest``.

    Walk below ``WALK_MAX_M``, otherwise drive or ride (with a few minutes to park);
    dwell for a lognormal time around the category's median; return to ``(rx, ry)``.
    """
    n = len(user)
    dist = np.hypot(est.x[dest] - ox, est.y[dest] - oy)
    walk = dist < WALK_MAX_M
    speed = np.where(walk, rng.uniform(1.1, 1.6, n), rng.uniform(5.0, 11.0, n))
    overhead = np.where(walk, 0.0, rng.uniform(60.0, 300.0, n))
    travel = dist / speed + overhead
    cat = est.category[dest]
    dwell = DWELL_MINUTES[cat] * 60.0 * rng.lognormal(0.0, 0.35, n)
    arrive = depart + travel
    leave = arrive + dwell
    back = np.hypot(rx - est.x[dest], ry - est.y[dest]) / speed + overhead
    return Trips(
        user=user,
        depart=depart,
        arrive=arrive,
        leave=leave,
        end=leave + back,
        ox=ox,
        oy=oy,
        dest=dest,
        rx=rx,
        ry=ry,
        report_return=rng.random(n) < RETURN_REPORTED,
        walk=walk,
    )


def trip_pings(rng: np.random.Generator, est: Establishments, trips: Trips) -> Pings:
    """Pings of trips: the way there, the dwell, and (when reported) the way back."""
    n = len(trips)
    ex, ey = est.x[trips.dest], est.y[trips.dest]
    cat = est.category[trips.dest]
    # leg 0: out, leg 1: dwell, leg 2: back (only reported returns)
    cadence_out = np.where(trips.walk, rng.uniform(60.0, 180.0, n), rng.uniform(120.0, 360.0, n))
    n_out = np.clip(np.rint((trips.arrive - trips.depart) / cadence_out), 1, MAX_MOVE_PINGS)
    dwell = trips.leave - trips.arrive
    n_dwell = np.minimum(
        1 + rng.poisson(dwell / (DWELL_PING_GAP_S[cat] * rng.uniform(0.7, 1.3, n))),
        MAX_DWELL_PINGS,
    )
    cadence_back = np.where(trips.walk, rng.uniform(60.0, 180.0, n), rng.uniform(120.0, 360.0, n))
    n_back = np.clip(np.rint((trips.end - trips.leave) / cadence_back), 1, MAX_MOVE_PINGS)
    n_back = np.where(trips.report_return, n_back, 0)

    seg_t0 = np.concatenate([trips.depart, trips.arrive, trips.leave])
    seg_t1 = np.concatenate([trips.arrive, trips.leave, trips.end])
    seg_x0 = np.concatenate([trips.ox, ex, ex])
    seg_y0 = np.concatenate([trips.oy, ey, ey])
    seg_x1 = np.concatenate([ex, ex, trips.rx])
    seg_y1 = np.concatenate([ey, ey, trips.ry])
    seg_n = np.concatenate([n_out, n_dwell, n_back]).astype(np.int64)
    seg_user = np.concatenate([trips.user, trips.user, trips.user])
    seg_kind = np.repeat(np.array([KIND_MOVE, KIND_DWELL, KIND_MOVE]), n)
    # a moving leg bends sideways (streets are not straight lines); a dwell does not, but
    # the phone sits somewhere on the premises, a few metres from the listed point
    length = np.hypot(seg_x1 - seg_x0, seg_y1 - seg_y0)
    bend = np.where(seg_kind == KIND_MOVE, rng.normal(0.0, 0.12, 3 * n) * length, 0.0)
    spot = np.where(seg_kind == KIND_DWELL, 7.0, 0.0)
    spot_x = rng.normal(0.0, 1.0, 3 * n) * spot
    spot_y = rng.normal(0.0, 1.0, 3 * n) * spot

    keep = seg_n > 0
    seg = np.flatnonzero(keep)
    counts = seg_n[keep]
    f = sorted_fractions(rng, counts)
    sid = np.repeat(seg, counts)
    t = seg_t0[sid] + f * (seg_t1[sid] - seg_t0[sid])
    dx = seg_x1[sid] - seg_x0[sid]
    dy = seg_y1[sid] - seg_y0[sid]
    ln = np.maximum(length[sid], 1e-9)
    side = bend[sid] * np.sin(np.pi * f) / ln
    x = seg_x0[sid] + f * dx - side * dy + spot_x[sid]
    y = seg_y0[sid] + f * dy + side * dx + spot_y[sid]
    return Pings(user=seg_user[sid], t=t, x=x, y=y, kind=seg_kind[sid].astype(np.int8))


_APP_CDF = np.cumsum(APP_USAGE_RHYTHM)


def idle_pings(
    rng: np.random.Generator,
    timeline: Timeline,
    n_per_user: np.ndarray,
    home_x: np.ndarray,
    home_y: np.ndarray,
    work_x: np.ndarray,
    work_y: np.ndarray,
    has_work: np.ndarray,
) -> Pings:
    """About ``n_per_user`` pings per user in short app sessions at home or at work."""
    n_sess = rng.poisson(np.asarray(n_per_user, dtype=np.float64) / 3.0)
    sess_user = np.repeat(np.arange(len(n_sess)), n_sess)
    s = len(sess_user)
    day = rng.integers(0, timeline.n_days, s)
    hour = np.minimum(np.searchsorted(_APP_CDF, rng.random(s) * _APP_CDF[-1]), 23)
    t0 = day * float(DAY_S) + hour * 3600.0 + rng.uniform(0.0, 3600.0, s)
    weekday = timeline.weekday_of_day(day)
    at_work = (
        has_work[sess_user] & (weekday < 5) & (hour >= 9) & (hour < 18) & (rng.random(s) < 0.85)
    )
    ax = np.where(at_work, work_x[sess_user], home_x[sess_user]) + rng.normal(0.0, 15.0, s)
    ay = np.where(at_work, work_y[sess_user], home_y[sess_user]) + rng.normal(0.0, 15.0, s)
    size = 1 + rng.poisson(2.0, s)
    gaps = rng.standard_exponential(int(size.sum()), dtype=np.float32) * np.float32(150.0)
    sid = np.repeat(np.arange(s), size)
    t = t0[sid] + group_cumsum(gaps.astype(np.float64), size)
    return Pings(
        user=sess_user[sid],
        t=t,
        x=ax[sid],
        y=ay[sid],
        kind=np.full(len(sid), KIND_IDLE, dtype=np.int8),
    )


_NOISE_BY_KIND = np.array([GPS_NOISE_M, DWELL_NOISE_M, IDLE_NOISE_M], dtype=np.float32)


def add_gps_noise(rng: np.random.Generator, pings: Pings) -> None:
    """GPS error of a few metres, with rare outliers (in place)."""
    n = len(pings)
    sigma = _NOISE_BY_KIND[pings.kind % KIND_AD_TRIP]
    sigma[rng.random(n, dtype=np.float32) < GPS_OUTLIER_SHARE] = GPS_OUTLIER_M
    pings.x += rng.standard_normal(n, dtype=np.float32) * sigma
    pings.y += rng.standard_normal(n, dtype=np.float32) * sigma


# --- Keeping one user in one place at a time.


def drop_overlapping(trips: Trips, span: float) -> np.ndarray:
    """Indices (sorted by user, departure) of trips that overlap no earlier trip of their user.

    ``span`` must exceed every time (the composite sort key is ``user * span + time``).
    """
    key = trips.user * span + trips.depart
    order = np.argsort(key, kind="stable")
    ends = (trips.user * span + trips.end)[order]
    prev = np.maximum.accumulate(ends)
    prev = np.concatenate([[-np.inf], prev[:-1]])
    return order[key[order] >= prev]


@dataclass(frozen=True)
class Busy:
    """Non-overlapping busy intervals per user, sorted (for "is the user on a trip?")."""

    key_start: np.ndarray
    user: np.ndarray
    start: np.ndarray
    end: np.ndarray
    span: float

    @classmethod
    def of(cls, trips: Trips, span: float) -> Busy:
        key = trips.user * span + trips.depart
        order = np.argsort(key, kind="stable")
        return cls(key[order], trips.user[order], trips.depart[order], trips.end[order], span)

    def _last_starting_before(self, user: np.ndarray, t: np.ndarray, side: str) -> np.ndarray:
        return np.searchsorted(self.key_start, user * self.span + t, side=side) - 1  # type: ignore[call-overload]

    def contains(self, user: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether time ``t`` of ``user`` lies in one of the user's intervals."""
        if len(self.start) == 0:
            return np.zeros(len(user), dtype=bool)
        pos = self._last_starting_before(user, t, "right")
        p = np.maximum(pos, 0)
        return (pos >= 0) & (self.user[p] == user) & (t < self.end[p])

    def overlaps(self, user: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Whether ``[start, end)`` of ``user`` overlaps one of the user's intervals."""
        if len(self.start) == 0:
            return np.zeros(len(user), dtype=bool)
        pos = self._last_starting_before(user, end, "left")
        p = np.maximum(pos, 0)
        return (pos >= 0) & (self.user[p] == user) & (self.end[p] > start)


#: Granularity of :class:`BusySlots`, seconds.
SLOT_S = 900.0
_SLOTS_PER_DAY = int(86_400 / SLOT_S)


class BusySlots:
    """The quarter-hours each user spends on a trip: a bitmap for "is the user busy at t?".

    Coarser than :class:`Busy` on purpose (an idle ping is dropped when it falls in the
    same quarter-hour as a trip - the user is about to leave or just back), and much
    faster for millions of point queries: one gather instead of a binary search each.
    """

    def __init__(self, n_users: int, n_days: int) -> None:
        # one spare day on each side: trips may start before the period or end after it
        self.per_user = (n_days + 2) * _SLOTS_PER_DAY
        self.bits = np.zeros(max(n_users, 1) * self.per_user, dtype=bool)

    def _slot(self, t: np.ndarray) -> np.ndarray:
        slot = (t // SLOT_S).astype(np.int64) + _SLOTS_PER_DAY
        return np.clip(slot, 0, self.per_user - 1)

    def mark(self, trips: Trips) -> BusySlots:
        """Mark every quarter-hour touched by ``[depart, end]`` of each trip."""
        first = self._slot(trips.depart)
        n = self._slot(trips.end) - first + 1
        start = trips.user * self.per_user + first
        offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        self.bits[np.repeat(start, n) + offsets] = True
        return self

    def contains(self, user: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether ``user`` is (near) a trip at time ``t``."""
        return self.bits[user * self.per_user + self._slot(t)]
