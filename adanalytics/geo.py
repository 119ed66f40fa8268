"""Distances and the grid index behind every proximity rule (numpy; one source of truth).

The visit rule ("closer than 50 m") and the approach rule ("closer than 500 m") never
compare every record with every establishment. Space is cut into cells at least one
radius high; each establishment is *replicated* into every cell its disc can touch, so a
record only has to look up its own cell and then check the exact haversine distance to
the few establishments listed there.

Cell keys use only +, -, *, / and floor on IEEE doubles plus integer table look-ups, so
the same key comes out bit for bit in numpy and in Spark SQL: an engine may compute the
(small) establishment side here and the (big) record side in its own expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from adanalytics.semantics import EARTH_RADIUS_M

_DEG = math.pi / 180.0
#: Relative safety margin on search extents: only ever adds candidates, the exact
#: haversine filter decides.
_MARGIN = 1e-6


def haversine_m(lat1, lon1, lat2, lon2):  # type: ignore[no-untyped-def]
    """Great-circle distance in metres on a sphere of radius ``EARTH_RADIUS_M``.

    Works element-wise on scalars or numpy arrays (degrees in, metres out). The
    formula (and its operation order) is the reference every engine reproduces.
    """
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


@dataclass(frozen=True)
class GridSpec:
    """Cell layout for one search radius.

    Attributes
    ----------
    radius_m:
        The search radius the layout serves.
    height_deg:
        Height of a latitude band in degrees (>= the radius, so a disc spans <= 3 bands).
    n_bands:
        Number of latitude bands from -90 to 90.
    n_lon0:
        Number of longitude cells of a band far from the poles.
    zone_q:
        Ascending integer thresholds on a band's distance to the nearest pole (in bands):
        a band with ``q < zone_q[j]`` for ``m`` of the thresholds has ``n_lon0 >> m``
        longitude cells (wider cells towards the poles keep replication small).
    """

    radius_m: float
    height_deg: float
    n_bands: int
    n_lon0: int
    zone_q: tuple[int, ...] = field(default=())

    @property
    def radius_deg(self) -> float:
        """The radius as an angle in degrees (arc length on the sphere)."""
        return self.radius_m / EARTH_RADIUS_M / _DEG

    def band(self, lat: np.ndarray) -> np.ndarray:
        """Latitude band index of each latitude (int64)."""
        b = np.floor((np.asarray(lat, dtype=np.float64) + 90.0) / self.height_deg)
        return np.clip(b, 0, self.n_bands - 1).astype(np.int64)

    def lon_cells(self, band: np.ndarray) -> np.ndarray:
        """Number of longitude cells of each band (int64)."""
        band = np.asarray(band, dtype=np.int64)
        q = np.minimum(band, self.n_bands - 1 - band)
        shift = len(self.zone_q) - np.searchsorted(np.asarray(self.zone_q), q, side="right")
        return np.maximum(self.n_lon0 >> shift, 1).astype(np.int64)

    def lon_index(self, lon: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Longitude cell of each longitude in a band of ``n`` cells."""
        idx = np.floor((np.asarray(lon, dtype=np.float64) + 180.0) * n / 360.0).astype(np.int64)
        return np.mod(idx, n)

    def cell_keys(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The cell key (``band << 32 | lon_index``) of each point."""
        b = self.band(lat)
        n = self.lon_cells(b)
        return (b << 32) | self.lon_index(lon, n)


@lru_cache(maxsize=32)
def grid_spec(radius_m: float) -> GridSpec:
    """The grid layout for ``radius_m`` (cached; deterministic)."""
    radius_deg = radius_m / EARTH_RADIUS_M / _DEG
    height = radius_deg * (1.0 + 1e-3)
    n_bands = math.ceil(180.0 / height) + 1
    n_lon0 = max(1, math.floor(360.0 / height))
    # A zone boundary every time cos(latitude) halves: 60°, 75.5°, 82.8°, ...
    zone_q: list[int] = []
    k = 1
    while (n_lon0 >> k) >= 1 and k < 40:
        theta = math.degrees(math.acos(0.5**k))  # |lat| beyond which cells may be 2^k wide
        q = math.floor((90.0 - theta) / height)
        if q <= 0:
            break
        zone_q.append(q)
        k += 1
    return GridSpec(
        radius_m=float(radius_m),
        height_deg=height,
        n_bands=n_bands,
        n_lon0=n_lon0,
        zone_q=tuple(sorted(zone_q)),
    )


def _hav(x: float) -> float:
    return math.sin(x / 2.0) ** 2


def replicate_points(
    spec: GridSpec, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (cell key, point index) such that the point's disc may reach the cell.

    A point P closer than ``spec.radius_m`` to point i always has
    ``cell_keys(P)`` among the keys returned for i.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    r_deg = spec.radius_deg * (1.0 + _MARGIN)
    hav_r = _hav(spec.radius_m / EARTH_RADIUS_M * (1.0 + _MARGIN))
    keys: list[np.ndarray] = []
    idxs: list[np.ndarray] = []
    b_lo = spec.band(lat - r_deg)
    b_hi = spec.band(lat + r_deg)
    for i in range(len(lat)):
        phi = lat[i]
        cos_phi = math.cos(phi * _DEG)
        for b in range(int(b_lo[i]), int(b_hi[i]) + 1):
            band_lo = b * spec.height_deg - 90.0
            band_hi = band_lo + spec.height_deg
            # the poleward-most latitude a neighbour in this band can have
            lo = max(band_lo, phi - r_deg)
            hi = min(band_hi, phi + r_deg)
            worst = min(90.0, max(abs(lo), abs(hi)) + 1e-9)
            n = int(spec.lon_cells(np.array([b]))[0])
            denom = cos_phi * math.cos(worst * _DEG)
            ratio = hav_r / denom if denom > 0 else math.inf
            if ratio >= 1.0:
                cells = np.arange(n, dtype=np.int64)
            else:
                dlmb = math.degrees(2.0 * math.asin(math.sqrt(ratio))) * (1.0 + _MARGIN)
                i_lo = int(spec.lon_index(np.array([lon[i] - dlmb]), np.array([n]))[0])
                lo_raw = math.floor((lon[i] - dlmb + 180.0) * n / 360.0)
                hi_raw = math.floor((lon[i] + dlmb + 180.0) * n / 360.0)
                width = hi_raw - lo_raw + 1
                if width >= n:
                    cells = np.arange(n, dtype=np.int64)
                else:
                    cells = np.mod(i_lo + np.arange(width, dtype=np.int64), n)
            keys.append((np.int64(b) << 32) | cells)
            idxs.append(np.full(len(cells), i, dtype=np.int64))
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(keys), np.concatenate(idxs)


@dataclass(frozen=True)
class CellIndex:
    """Establishments (or any points) indexed by the cells their discs may reach.

    Build once per radius with :func:`build_index`; query with :meth:`candidates` or
    :meth:`within`. Small (a few cells per point) and picklable, so Dask and Spark ship it
    to workers as a broadcast.
    """

    spec: GridSpec
    lat: np.ndarray
    lon: np.ndarray
    keys: np.ndarray  # sorted unique cell keys
    starts: np.ndarray  # len(keys) + 1 offsets into items
    items: np.ndarray  # point indices, grouped by key

    def candidates(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query index, point index) pairs sharing a cell - a superset of the matches."""
        q = self.spec.cell_keys(lat, lon)
        if len(self.keys) == 0 or len(q) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        pos = np.searchsorted(self.keys, q)
        pos_c = np.minimum(pos, len(self.keys) - 1)
        hit = self.keys[pos_c] == q
        qi = np.flatnonzero(hit)
        pos_h = pos_c[qi]
        start = self.starts[pos_h]
        count = self.starts[pos_h + 1] - start
        if len(count) and count.max() == 1:
            return qi, self.items[start]
        rep_q = np.repeat(qi, count)
        # offsets 0..count-1 inside each run, added to its start
        run_start = np.repeat(np.cumsum(count) - count, count)
        offs = np.arange(len(rep_q), dtype=np.int64) - run_start
        return rep_q, self.items[np.repeat(start, count) + offs]

    def within(
        self, lat: np.ndarray, lon: np.ndarray, radius_m: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, point index, distance m) of every pair closer than the radius.

        Strictly closer: a pair at exactly ``radius_m`` is not a match. ``radius_m``
        may be smaller than the index's own radius (never larger).
        """
        r = self.spec.radius_m if radius_m is None else float(radius_m)
        if r > self.spec.radius_m:
            msg = f"radius {r} m exceeds the index radius {self.spec.radius_m} m"
            raise ValueError(msg)
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        qi, pi = self.candidates(lat, lon)
        d = haversine_m(lat[qi], lon[qi], self.lat[pi], self.lon[pi])
        keep = d < r
        return qi[keep], pi[keep], d[keep]


def build_index(lat: np.ndarray, lon: np.ndarray, radius_m: float) -> CellIndex:
    """Index points for "closer than ``radius_m``" look-ups."""
    spec = grid_spec(float(radius_m))
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    keys, idx = replicate_points(spec, lat, lon)
    order = np.lexsort((idx, keys))
    keys, idx = keys[order], idx[order]
    uniq, first = np.unique(keys, return_index=True)
    starts = np.append(first, len(keys)).astype(np.int64)
    return CellIndex(spec=spec, lat=lat, lon=lon, keys=uniq, starts=starts, items=idx)
