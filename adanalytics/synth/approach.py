"""A few users who walk up to advertised establishments (the real-time question, SPEC §3.7).

Each walks in from 1.5-3 km away with a ping every one to two minutes, closing in on an
establishment whose ad is active that day, lingers there for a few pings and goes. Their
approaches are listed in truth.json so the streaming job can be checked against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adanalytics.synth.catalog import N_CATEGORIES
from adanalytics.synth.chunk import STREAM_APPROACH, World
from adanalytics.synth.movement import GPS_NOISE_M
from adanalytics.synth.timeline import DAY_S

#: Approach walks per demo user.
WALKS_PER_USER = 4


@dataclass
class ApproachUsers:
    """Location rows of the demo users (chunk-local user index) and their planted walks."""

    user: np.ndarray
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    walks: list[dict[str, Any]]


def approach_users(world: World, n_users: int) -> ApproachUsers:
    """``n_users`` demo users, each with ``WALKS_PER_USER`` walks up to an advertised place."""
    rng = np.random.default_rng([world.seed, STREAM_APPROACH])
    tl, est, camp = world.timeline, world.est, world.camp
    users: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    walks: list[dict[str, Any]] = []
    lo_day, hi_day = (1, tl.n_days - 1) if tl.n_days > 3 else (0, tl.n_days)
    for u in range(n_users):
        k = min(WALKS_PER_USER, hi_day - lo_day)
        days = np.sort(rng.choice(np.arange(lo_day, hi_day), size=k, replace=False))
        for day in days:
            active = camp.active_items[
                camp.active_ptr[day * N_CATEGORIES] : camp.active_ptr[(day + 1) * N_CATEGORIES]
            ]
            ad = int(rng.choice(active))
            e = int(camp.ad_establishment[ad])
            start_d = rng.uniform(1_500.0, 3_000.0)
            bearing = rng.uniform(0.0, 2.0 * math.pi)
            speed = rng.uniform(1.2, 1.5)
            n_walk = max(2, round(start_d / speed / 80.0))
            t_walk = np.cumsum(rng.uniform(50.0, 110.0, n_walk))
            # irregular pings at a steady pace, the last one at the door
            covered = t_walk / t_walk[-1] * (start_d - rng.uniform(2.0, 15.0))
            remaining = start_d - covered
            sway = rng.normal(0.0, 4.0, n_walk)
            x_walk = est.x[e] + remaining * math.cos(bearing) - sway * math.sin(bearing)
            y_walk = est.y[e] + remaining * math.sin(bearing) + sway * math.cos(bearing)
            n_dwell = int(rng.integers(3, 7))
            t_arrive = t_walk[-1]
            t_dwell = t_arrive + np.cumsum(rng.uniform(180.0, 420.0, n_dwell))
            x_dwell = est.x[e] + rng.normal(0.0, 6.0, n_dwell)
            y_dwell = est.y[e] + rng.normal(0.0, 6.0, n_dwell)
            t0 = day * float(DAY_S) + rng.uniform(10.0, 19.0) * 3600.0
            t = t0 + np.concatenate([t_walk, t_dwell])
            n = len(t)
            users.append(np.full(n, u, dtype=np.int64))
            ts.append(t)
            xs.append(np.concatenate([x_walk, x_dwell]) + rng.normal(0.0, GPS_NOISE_M / 2, n))
            ys.append(np.concatenate([y_walk, y_dwell]) + rng.normal(0.0, GPS_NOISE_M / 2, n))
            walks.append(
                {
                    "user": u,
                    "establishment": e,
                    "ad": ad,
                    "start_local_s": float(t[0]),
                    "arrival_local_s": float(t0 + t_arrive),
                    "start_distance_m": round(float(start_d), 1),
                }
            )
    if not users:
        empty = np.empty(0)
        return ApproachUsers(empty.astype(np.int64), empty, empty, empty, [])
    return ApproachUsers(
        user=np.concatenate(users),
        t=np.concatenate(ts),
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        walks=walks,
    )
