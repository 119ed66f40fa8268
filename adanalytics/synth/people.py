"""Users: where they live and work, their persona and preferences, how active they are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adanalytics.synth.catalog import (
    CATEGORY_RHYTHM,
    FAVOURITE_PLACE_WEIGHT,
    FAVOURITE_WEIGHT,
    N_CATEGORIES,
    PERSONA_PERIOD_WEIGHTS,
    PERSONA_SHARE,
    PERSONA_WEEKDAY_WEIGHTS,
)
from adanalytics.synth.city import City, Establishments

#: Share of (user, period) and (user, weekday) rows whose favourite differs from the
#: persona's: users are individuals, not copies of their persona.
PERSONAL_TWIST = 0.2
#: Share of users without a workplace (their day anchor is home).
NO_WORK = 0.15
#: Share of homes and workplaces kept clear of establishments (the others may be next
#: door to one, and their idle pings then count as visits).
ANCHOR_CLEAR_SHARE = 0.85
#: Mean number of ad views per location record (users vary around it).
VIEWS_PER_RECORD = 0.3


@dataclass
class Users:
    """The users of one chunk (arrays aligned by chunk-local user index)."""

    home_x: np.ndarray
    home_y: np.ndarray
    work_x: np.ndarray
    work_y: np.ndarray
    has_work: np.ndarray
    persona: np.ndarray
    #: (user, period, category) weights of ad interactions, rows sum to 1
    period_w: np.ndarray
    #: (user, weekday, category) weights of trips to establishments, rows sum to 1
    weekday_w: np.ndarray
    #: expected number of location records of each user
    budget: np.ndarray
    #: probability that a location record comes with an ad view
    p_view: np.ndarray

    def __len__(self) -> int:
        return len(self.home_x)


def _personalise(rng: np.random.Generator, w: np.ndarray, favourite: float) -> np.ndarray:
    w = w.copy()
    u, r = np.nonzero(rng.random(w.shape[:2]) < PERSONAL_TWIST)
    old = w[u, r].argmax(axis=1)
    new = rng.integers(0, N_CATEGORIES, len(u))
    w[u, r, old] -= favourite
    w[u, r, new] += favourite
    w *= rng.gamma(4.0, 0.25, w.shape)
    return w / w.sum(axis=2, keepdims=True)


def make_users(
    rng: np.random.Generator, city: City, est: Establishments, n: int, records: int
) -> Users:
    """``n`` users sharing about ``records`` location records."""
    home_x, home_y = city.sample_residential(rng, n)
    work_x, work_y = city.sample_commercial(rng, n)
    elsewhere = rng.random(n) < 0.25
    ex, ey = city.sample_residential(rng, int(elsewhere.sum()))
    work_x[elsewhere], work_y[elsewhere] = ex, ey
    home_x, home_y = est.push_away(rng, home_x, home_y, ANCHOR_CLEAR_SHARE)
    work_x, work_y = est.push_away(rng, work_x, work_y, ANCHOR_CLEAR_SHARE)
    has_work = rng.random(n) >= NO_WORK
    persona = rng.choice(len(PERSONA_SHARE), size=n, p=PERSONA_SHARE / PERSONA_SHARE.sum())
    period_w = _personalise(rng, PERSONA_PERIOD_WEIGHTS[persona], FAVOURITE_WEIGHT)
    weekday_w = _personalise(rng, PERSONA_WEEKDAY_WEIGHTS[persona], FAVOURITE_PLACE_WEIGHT)
    activity = rng.lognormal(0.0, 0.5, n)
    budget = records * activity / activity.sum()
    engagement = rng.lognormal(0.0, 0.4, n)
    p_view = np.clip(VIEWS_PER_RECORD * engagement / np.exp(0.08), 0.02, 0.9)
    return Users(
        home_x=home_x,
        home_y=home_y,
        work_x=work_x,
        work_y=work_y,
        has_work=has_work,
        persona=persona.astype(np.int64),
        period_w=period_w,
        weekday_w=weekday_w,
        budget=budget,
        p_view=p_view,
    )


def _rhythm_within_period() -> np.ndarray:
    # (category, hour): the category rhythm rescaled to mean 1 inside each 6-hour period,
    # so preferences decide *which period* and the rhythm *which hour inside it*
    r = CATEGORY_RHYTHM.reshape(N_CATEGORIES, 4, 6)
    return (r / r.mean(axis=2, keepdims=True)).reshape(N_CATEGORIES, 24)


#: (hour, category) multiplier of a category's interaction weight at a local hour.
HOURLY_MULTIPLIER: np.ndarray = np.ascontiguousarray(_rhythm_within_period().T)


class RowSampler:
    """Draw a column index from one of many weight rows, for millions of draws at once.

    The cumulative weights of row ``r`` are stored shifted by ``r`` in one increasing
    array, so a draw is one ``searchsorted`` of ``r + u`` - no per-draw row copies.
    """

    def __init__(self, weights: np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1, weights.shape[-1])
        cdf = np.cumsum(w, axis=1)
        cdf /= cdf[:, -1:]
        self.k = w.shape[1]
        self.flat = (cdf + np.arange(len(w))[:, None]).ravel()

    def sample(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Column drawn for each (row, uniform in [0, 1))."""
        pos = np.searchsorted(self.flat, rows + u, side="right")
        return np.minimum(pos - rows * self.k, self.k - 1)


def sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row of ``weights`` (non-negative, not necessarily normalised)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)
