"""The city: commercial hot spots, establishments, campaigns and their ads.

Everything here is small (at most tens of thousands of rows) and built once per
dataset from its own random stream; the per-user chunks only read it.
Positions are kept in local metres (x east, y north of the centre) and converted to
degrees with an equirectangular projection, accurate to centimetres at city scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from adanalytics.semantics import EARTH_RADIUS_M
from adanalytics.synth.catalog import (
    CAMPAIGN_SHARE,
    CAMPAIGN_THEMES,
    CATEGORIES,
    ESTABLISHMENT_SHARE,
    N_CATEGORIES,
    NAME_PREFIXES,
    NAME_WORDS,
)
from adanalytics.synth.timeline import Timeline

#: Metres per degree of latitude on the analysis sphere.
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
#: Share of establishments in commercial hot spots (the rest is sparse background).
HOTSPOT_SHARE = 0.8
#: Share of (non always-on) ads whose category differs from their establishment's.
MISLABELLED_AD_SHARE = 0.04


@dataclass(frozen=True)
class City:
    """Geometry of the city around ``(lat0, lon0)``.

    ``hotspots`` rows are (x m, y m, sigma m, weight) of the gaussian commercial areas.
    """

    lat0: float
    lon0: float
    hotspots: np.ndarray
    residential_sigma_m: float = 5_000.0
    background_sigma_m: float = 6_000.0

    @property
    def m_per_deg_lon(self) -> float:
        return M_PER_DEG * max(math.cos(math.radians(self.lat0)), 1e-3)

    def to_latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Degrees of local metres (always valid: lat clipped, lon wrapped)."""
        lat = self.lat0 + y * (1.0 / M_PER_DEG)
        lon = self.lon0 + x * (1.0 / self.m_per_deg_lon)
        if len(lat) and (lat.min() < -90.0 or lat.max() > 90.0):
            lat = np.clip(lat, -90.0, 90.0)
        if len(lon) and (lon.min() < -180.0 or lon.max() > 180.0):
            lon = np.where((lon < -180.0) | (lon > 180.0), (lon + 180.0) % 360.0 - 180.0, lon)
        return lat, lon

    def sample_commercial(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Points in the commercial hot spots."""
        w = self.hotspots[:, 3] / self.hotspots[:, 3].sum()
        k = rng.choice(len(w), size=n, p=w)
        hs = self.hotspots[k]
        return (
            hs[:, 0] + rng.normal(0.0, 1.0, n) * hs[:, 2],
            hs[:, 1] + rng.normal(0.0, 1.0, n) * hs[:, 2],
        )

    def sample_background(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Points spread over the whole city."""
        return (
            rng.normal(0.0, self.background_sigma_m, n),
            rng.normal(0.0, self.background_sigma_m, n),
        )

    def sample_residential(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Homes: mostly spread around the centre, some in the busy neighbourhoods."""
        x = rng.normal(0.0, self.residential_sigma_m, n)
        y = rng.normal(0.0, self.residential_sigma_m, n)
        urban = rng.random(n) < 0.3
        cx, cy = self.sample_commercial(rng, int(urban.sum()))
        x[urban] = cx + rng.normal(0.0, 600.0, len(cx))
        y[urban] = cy + rng.normal(0.0, 600.0, len(cy))
        return x, y


def build_city(rng: np.random.Generator, lat0: float, lon0: float, n_establishments: int) -> City:
    """A city with a downtown and a handful of other commercial areas.

    More establishments make a bigger city: hot spots widen (and the city spreads) so
    that their density - and with it the share of records close to some establishment -
    stays plausible from ``tiny`` to ``large``.
    """
    widen = float(np.clip((n_establishments / 200.0) ** 0.45, 1.0, 12.0))
    spread = math.sqrt(widen)
    k = 8
    angle = rng.uniform(0.0, 2.0 * math.pi, k)
    dist = rng.uniform(1_500.0, 9_000.0, k) * spread
    dist[0] = 0.0  # downtown
    sigma = rng.uniform(250.0, 800.0, k) * widen
    sigma[0] = 700.0 * widen
    weight = rng.uniform(0.4, 1.0, k)
    weight[0] = 2.0
    hotspots = np.column_stack([dist * np.cos(angle), dist * np.sin(angle), sigma, weight])
    return City(
        lat0=float(lat0),
        lon0=float(lon0),
        hotspots=hotspots,
        residential_sigma_m=5_000.0 * spread,
        background_sigma_m=6_000.0 * spread,
    )


@dataclass(frozen=True)
class Establishments:
    """Partner establishments (arrays aligned by establishment index)."""

    ids: np.ndarray  # object array of str
    names: np.ndarray
    category: np.ndarray  # int category index
    x: np.ndarray
    y: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    #: establishments of category c are by_category[cat_ptr[c]:cat_ptr[c+1]]
    by_category: np.ndarray
    cat_ptr: np.ndarray
    #: sorted keys of the CLEARANCE_M grid cells holding an establishment
    cell_keys: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def crowded(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether an establishment may lie within ``CLEARANCE_M`` of each point.

        True when any of the 3 x 3 grid cells around the point holds one (so every
        establishment closer than ``CLEARANCE_M`` is caught, and some a bit farther).
        """
        cx, cy = _cell(x), _cell(y)
        hit = np.zeros(len(x), dtype=bool)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                key = _cell_key(cx + dx, cy + dy)
                pos = np.minimum(np.searchsorted(self.cell_keys, key), len(self.cell_keys) - 1)
                hit |= self.cell_keys[pos] == key
        return hit

    def push_away(
        self, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, share: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move ``share`` of the points that sit next to an establishment a little away.

        Homes and offices are mostly not inside a partner shop: without this, idle pings
        at home or work would count as visits all day long.
        """
        x, y = x.copy(), y.copy()
        todo = np.flatnonzero(rng.random(len(x)) < share)
        for _ in range(6):
            todo = todo[self.crowded(x[todo], y[todo])]
            if len(todo) == 0:
                break
            d = rng.uniform(100.0, 300.0, len(todo))
            a = rng.uniform(0.0, 2.0 * math.pi, len(todo))
            x[todo] += d * np.cos(a)
            y[todo] += d * np.sin(a)
        return x, y

    def table(self) -> pa.Table:
        return pa.table(
            {
                "establishment_id": pa.array(self.ids, pa.string()),
                "name": pa.array(self.names, pa.string()),
                "category": pa.array(
                    np.asarray(CATEGORIES, dtype=object)[self.category], pa.string()
                ),
                "lat": pa.array(self.lat, pa.float64()),
                "lon": pa.array(self.lon, pa.float64()),
            }
        )


#: Cell size of the "is an establishment next to this point?" grid, metres.
CLEARANCE_M = 50.0


def _cell(v: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(v) / CLEARANCE_M).astype(np.int64)


def _cell_key(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    return (cx + (1 << 30)) * (1 << 31) + (cy + (1 << 30))


def id_strings(prefix: str, start: int, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded 1-based numbers ``start+1 .. start+n`` (object array)."""
    return np.array(
        [f"{prefix}{i:0{width}d}" for i in range(start + 1, start + n + 1)], dtype=object
    )


def build_establishments(rng: np.random.Generator, city: City, n: int) -> Establishments:
    """``n`` establishments: hot spots plus sparse background, each with a category and name."""
    n_hot = round(n * HOTSPOT_SHARE)
    hx, hy = city.sample_commercial(rng, n_hot)
    bx, by = city.sample_background(rng, n - n_hot)
    x = np.concatenate([hx, bx])
    y = np.concatenate([hy, by])
    cat = rng.choice(N_CATEGORIES, size=n, p=ESTABLISHMENT_SHARE / ESTABLISHMENT_SHARE.sum())
    lat, lon = city.to_latlon(x, y)
    prefix_pick = rng.random(n)
    word_pick = rng.integers(0, len(NAME_WORDS), n)
    names = np.empty(n, dtype=object)
    for i in range(n):
        prefixes = NAME_PREFIXES[CATEGORIES[cat[i]]]
        names[i] = f"{prefixes[int(prefix_pick[i] * len(prefixes))]} {NAME_WORDS[word_pick[i]]}"
    order = np.argsort(cat, kind="stable")
    counts = np.bincount(cat, minlength=N_CATEGORIES)
    cat_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    width = max(6, len(str(n)))
    return Establishments(
        ids=id_strings("e", 0, n, width),
        names=names,
        category=cat.astype(np.int64),
        x=x,
        y=y,
        lat=lat,
        lon=lon,
        by_category=order.astype(np.int64),
        cat_ptr=cat_ptr,
        cell_keys=np.unique(_cell_key(_cell(x), _cell(y))),
    )


@dataclass(frozen=True)
class Campaigns:
    """Campaigns and their ads, with the planted CTRs and the active-ad look-up."""

    ids: np.ndarray
    names: np.ndarray
    start_day: np.ndarray  # local day index, inclusive
    end_day: np.ndarray  # local day index, inclusive
    ctr: np.ndarray  # planted click-through rate
    category: np.ndarray
    ad_ids: np.ndarray
    ad_campaign: np.ndarray
    ad_establishment: np.ndarray
    ad_category: np.ndarray
    #: ads of category c active on local day d are
    #: active_items[active_ptr[d * C + c] : active_ptr[d * C + c + 1]]
    active_ptr: np.ndarray
    active_items: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def campaigns_table(self, timeline: Timeline) -> pa.Table:
        return pa.table(
            {
                "campaign_id": pa.array(self.ids, pa.string()),
                "name": pa.array(self.names, pa.string()),
                "start_date": pa.array(timeline.date_of_day(self.start_day), pa.date32()),
                "end_date": pa.array(timeline.date_of_day(self.end_day), pa.date32()),
            }
        )

    def ads_table(self, establishments: Establishments) -> pa.Table:
        return pa.table(
            {
                "ad_id": pa.array(self.ad_ids, pa.string()),
                "campaign_id": pa.array(self.ids[self.ad_campaign], pa.string()),
                "establishment_id": pa.array(
                    establishments.ids[self.ad_establishment], pa.string()
                ),
                "category": pa.array(
                    np.asarray(CATEGORIES, dtype=object)[self.ad_category], pa.string()
                ),
            }
        )

    def pick_ads(self, day: np.ndarray, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """An active ad of ``category`` on local ``day`` for each row (``u`` uniform in [0, 1))."""
        key = day * N_CATEGORIES + category
        lo = self.active_ptr[key]
        cnt = self.active_ptr[key + 1] - lo
        return self.active_items[lo + np.minimum((u * cnt).astype(np.int64), cnt - 1)]


def build_campaigns(
    rng: np.random.Generator, n: int, establishments: Establishments, timeline: Timeline
) -> Campaigns:
    """``n`` campaigns (the first one per category always on) with 1-3 ads each.

    The always-on campaigns guarantee that every category has an active ad on every day,
    so an interaction can always be drawn from a user's preferred category.
    """
    n_days = timeline.n_days
    n = max(n, N_CATEGORIES)
    category = np.concatenate(
        [
            np.arange(N_CATEGORIES),
            rng.choice(
                N_CATEGORIES, size=n - N_CATEGORIES, p=CAMPAIGN_SHARE / CAMPAIGN_SHARE.sum()
            ),
        ]
    ).astype(np.int64)
    start = np.zeros(n, dtype=np.int64)
    end = np.full(n, n_days - 1, dtype=np.int64)
    k = n - N_CATEGORIES
    start[N_CATEGORIES:] = rng.integers(0, max(1, int(n_days * 0.75)), k)
    min_len = min(14, n_days)
    length = rng.integers(min_len, n_days + 1, k)
    end[N_CATEGORIES:] = np.minimum(start[N_CATEGORIES:] + length - 1, n_days - 1)
    ctr = np.exp(rng.uniform(math.log(0.005), math.log(0.08), n))
    ctr = np.round(ctr, 5)
    theme = rng.integers(0, len(CAMPAIGN_THEMES), n)
    width = max(4, len(str(n)))
    ids = id_strings("c", 0, n, width)
    names = np.array(
        [
            f"{CAMPAIGN_THEMES[theme[i]]} - {CATEGORIES[category[i]].title()} #{i + 1}"
            for i in range(n)
        ],
        dtype=object,
    )

    n_ads = rng.choice([1, 2, 3], size=n, p=[0.4, 0.35, 0.25])
    ad_campaign: list[int] = []
    ad_est: list[int] = []
    for i in range(n):
        lo, hi = establishments.cat_ptr[category[i]], establishments.cat_ptr[category[i] + 1]
        pool = establishments.by_category[lo:hi]
        if len(pool) == 0:  # tiny cities may lack a category: advertise anything
            pool = np.arange(len(establishments))
        picks = rng.choice(pool, size=min(int(n_ads[i]), len(pool)), replace=False)
        ad_campaign.extend([i] * len(picks))
        ad_est.extend(int(p) for p in np.sort(picks))
    ad_campaign_a = np.array(ad_campaign, dtype=np.int64)
    ad_est_a = np.array(ad_est, dtype=np.int64)
    ad_category = establishments.category[ad_est_a].copy()
    # always-on ads carry the category they are drawn for; a few others are mislabelled
    always = ad_campaign_a < N_CATEGORIES
    ad_category[always] = category[ad_campaign_a[always]]
    mislabel = (~always) & (rng.random(len(ad_est_a)) < MISLABELLED_AD_SHARE)
    shift = rng.integers(1, N_CATEGORIES, int(mislabel.sum()))
    ad_category[mislabel] = (ad_category[mislabel] + shift) % N_CATEGORIES
    ad_width = max(5, len(str(len(ad_est_a))))
    ad_ids = id_strings("ad", 0, len(ad_est_a), ad_width)

    # active-ad look-up by (day, category)
    days = np.arange(n_days)
    active = (start[ad_campaign_a][None, :] <= days[:, None]) & (
        days[:, None] <= end[ad_campaign_a][None, :]
    )
    d_idx, a_idx = np.nonzero(active)  # row-major: sorted by day, then ad
    key = d_idx * N_CATEGORIES + ad_category[a_idx]
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=n_days * N_CATEGORIES)
    if counts.min() == 0:  # cannot happen thanks to the always-on campaigns
        msg = "internal error: a (day, category) has no active ad"
        raise RuntimeError(msg)
    active_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Campaigns(
        ids=ids,
        names=names,
        start_day=start,
        end_day=end,
        ctr=ctr,
        category=category,
        ad_ids=ad_ids,
        ad_campaign=ad_campaign_a,
        ad_establishment=ad_est_a,
        ad_category=ad_category,
        active_ptr=active_ptr,
        active_items=a_idx[order].astype(np.int64),
    )


def campaigns_frame(c: Campaigns, timeline: Timeline) -> pd.DataFrame:
    """Campaigns with planted CTRs (for truth.json and tests)."""
    return pd.DataFrame(
        {
            "campaign_id": c.ids,
            "category": np.asarray(CATEGORIES, dtype=object)[c.category],
            "start_date": timeline.date_of_day(c.start_day),
            "end_date": timeline.date_of_day(c.end_day),
            "ctr": c.ctr,
        }
    )
