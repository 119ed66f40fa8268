"""Distances and the grid index behind every proximity rule (numpy; one source of truth).

The visit rule ("closer than 50 m") and the approach rule ("closer than 500 m") never
compare every record with every establishment. Space is cut into cells at least one
radius high; each establishment is *replicated* into every cell its disc can touch, so a
record only has to look up its own cell and then check the exact haversine distance to
the few establishments listed there.

Cell keys use only +, -, *, / and floor on IEEE doubles plus integer table look-ups, so
the same key comes out bit for bit in numpy and in Spark SQL: an engine may compute the
(small) establishment side here and the (big) record side in its own expressions.

How a query runs (:meth:`CellIndex.within`), in cache-sized chunks of records spread over
the machine's cores (numpy releases the GIL inside its loops):

1. the record's cell key, computed exactly as :meth:`GridSpec.cell_keys` does (with a fast
   path for the usual case: every record of the chunk in the bands far from the poles);
2. one gather per record in a table of the occupied cells: a dense table over their
   bounding box when it is small (one city), else an open-addressing hash table
   (multiplicative hashing, linear probing, load <= 1/8) - no binary search;
3. a conservative polynomial lower bound of the haversine of each (record, candidate)
   pair, that only drops pairs certainly farther than the radius, so that
4. the exact haversine (:func:`haversine_m`, bit for bit) is evaluated on few pairs
   besides the true matches; it alone decides ``distance < radius``.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from adanalytics.semantics import EARTH_RADIUS_M

_DEG = math.pi / 180.0
#: Relative safety margin on search extents: only ever adds candidates, the exact
#: haversine filter decides.
_MARGIN = 1e-6
#: Records per chunk of a query: its temporaries stay in the CPU's L2 cache.
_CHUNK = 1 << 15
#: Empty slot of the cell hash table (cell keys are >= 0).
_EMPTY = -1
#: Fibonacci hashing multiplier (2**64 / golden ratio).
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
#: Slack of the distance pre-filter (:meth:`CellIndex._distances`): a pair is dropped
#: only when a lower bound of its haversine term exceeds ``h = hav(r/R)`` by
#: ``h * 1e-7 + sqrt(h) * 1e-13``. Both sides are computed from the same radians, so
#: they differ by rounding only: ~1e-15 relative, plus ~3e-16 absolute on the cosine
#: bound, which the absolute part covers for radii down to millimetres.
_PREFILTER_REL = 1e-7
_PREFILTER_ABS = 1e-13
#: A dense cell table is used when the box of the occupied cells has at most this many
#: cells (int32 each), and at most this many per occupied cell; else the hash table.
_DENSE_MAX_CELLS = 1 << 23
_DENSE_CELLS_PER_KEY = 256
_HALF_PI = math.pi / 2.0
_TWO_PI = 2.0 * math.pi
_EARTH_DIAMETER_M = 2.0 * EARTH_RADIUS_M


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

    @property
    def full_bands(self) -> tuple[int, int]:
        """First and last band with ``n_lon0`` longitude cells (all bands far from the poles)."""
        q = self.zone_q[-1] if self.zone_q else 0
        return q, self.n_bands - 1 - q

    def band(self, lat: np.ndarray) -> np.ndarray:
        """Latitude band index of each latitude (int64)."""
        b = np.floor((np.asarray(lat, dtype=np.float64) + 90.0) / self.height_deg)
        return np.clip(b, 0, self.n_bands - 1).astype(np.int64)

    def lon_cells(self, band: np.ndarray) -> np.ndarray:
        """Number of longitude cells of each band (int64)."""
        band = np.asarray(band, dtype=np.int64)
        q = np.minimum(band, self.n_bands - 1 - band)
        if not self.zone_q or (q.size and q.min() >= self.zone_q[-1]):
            return np.full(q.shape, max(self.n_lon0, 1), dtype=np.int64)
        shift = len(self.zone_q) - np.searchsorted(np.asarray(self.zone_q), q, side="right")
        return np.maximum(self.n_lon0 >> shift, 1).astype(np.int64)

    def lon_index(self, lon: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Longitude cell of each longitude in a band of ``n`` cells."""
        idx = np.floor((np.asarray(lon, dtype=np.float64) + 180.0) * n / 360.0).astype(np.int64)
        return np.mod(idx, n)

    def cell_keys(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The cell key (``band << 32 | lon_index``) of each point."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        if lat.ndim == 1 and lat.shape == lon.shape:
            keys = self._cell_keys_fast(lat, lon)
            if keys is not None:
                return keys
        b = self.band(lat)
        n = self.lon_cells(b)
        return (b << 32) | self.lon_index(lon, n)

    def _cell_keys_fast(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray | None:
        """``cell_keys`` when every point lies in a full band and no longitude wraps.

        The same floating-point operations as the general path (``n`` converted to a
        double is exact), without clipping, per-band cell counts or modulo; ``None``
        when a point needs them (polar zones, lon = 180, NaN) - then the general path
        runs.
        """
        if lat.size == 0:
            return np.empty(0, np.int64)
        b = lat + 90.0
        b /= self.height_deg
        np.floor(b, out=b)
        b_lo, b_hi = self.full_bands
        if not (b.min() >= b_lo and b.max() <= b_hi):
            return None
        n = float(self.n_lon0)
        x = lon + 180.0
        x *= n
        x /= 360.0
        np.floor(x, out=x)
        if not (x.min() >= 0.0 and x.max() < n):
            return None
        keys = b.astype(np.int64)
        np.left_shift(keys, 32, out=keys)
        keys |= x.astype(np.int64)
        return keys


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


def cell_order(lat: np.ndarray, lon: np.ndarray, radius_m: float) -> np.ndarray:
    """A permutation that puts points in the order of their cells of the ``radius_m``
    grid (band by band, then by longitude cell; a stable sort, so ties keep their order).

    Records stored in this order are looked up cell after cell: the grid index's tables
    and the candidate establishments' coordinates are then read from memory in runs,
    not at random (the Dask engine's ``persist()`` stores its locations so).
    """
    return np.argsort(grid_spec(float(radius_m)).cell_keys(lat, lon), kind="stable")


def _hav(x: float) -> float:
    return math.sin(x / 2.0) ** 2


def _runs(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each count ``c``, concatenated (the position inside each run)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def replicate_points(
    spec: GridSpec, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (cell key, point index) such that the point's disc may reach the cell.

    A point P closer than ``spec.radius_m`` to point i always has
    ``cell_keys(P)`` among the keys returned for i.

    For each band the disc (grown by ``_MARGIN``) overlaps, the longitude half-width is
    bounded with the band's poleward-most latitude a neighbour can have:
    ``hav(d) >= cos(phi_i) * cos(phi_worst) * hav(dlambda)``. Vectorised over
    (point, band) pairs; the output is grouped by point, then band, then cell.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if lat.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    r_deg = spec.radius_deg * (1.0 + _MARGIN)
    hav_r = _hav(spec.radius_m / EARTH_RADIUS_M * (1.0 + _MARGIN))
    b_lo = spec.band(lat - r_deg)
    b_hi = spec.band(lat + r_deg)
    n_b = b_hi - b_lo + 1
    # one row per (point, band)
    pt = np.repeat(np.arange(lat.size, dtype=np.int64), n_b)
    b = b_lo[pt] + _runs(n_b)
    phi = lat[pt]
    band_lo = b * spec.height_deg - 90.0
    band_hi = band_lo + spec.height_deg
    # the poleward-most latitude a neighbour in this band can have
    lo = np.maximum(band_lo, phi - r_deg)
    hi = np.minimum(band_hi, phi + r_deg)
    worst = np.minimum(90.0, np.maximum(np.abs(lo), np.abs(hi)) + 1e-9)
    n = spec.lon_cells(b)
    denom = np.cos(phi * _DEG) * np.cos(worst * _DEG)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denom > 0, hav_r / np.where(denom > 0, denom, 1.0), np.inf)
        full = ~(ratio < 1.0)
        dlmb = np.degrees(2.0 * np.arcsin(np.sqrt(np.where(full, 0.0, ratio)))) * (1.0 + _MARGIN)
    lam = lon[pt]
    lo_raw = np.floor((lam - dlmb + 180.0) * n / 360.0)
    hi_raw = np.floor((lam + dlmb + 180.0) * n / 360.0)
    width = hi_raw - lo_raw + 1
    full |= ~(width < n)
    first = np.where(full, 0, np.mod(np.where(full, 0.0, lo_raw), n).astype(np.int64))
    count = np.where(full, n, np.where(full, 0.0, width).astype(np.int64))
    # one row per (point, band, cell)
    row = np.repeat(np.arange(b.size, dtype=np.int64), count)
    cell = first[row] + _runs(count)
    wrap = cell >= n[row]
    cell[wrap] -= n[row][wrap]
    keys = (b[row] << 32) | cell
    return keys, pt[row]


def _threads() -> int:
    """Threads a query may use: the cores of this process, but one inside a worker thread
    (Dask and friends already run one task per core)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    env = os.environ.get("ADANALYTICS_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool)
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The module's worker threads (made again in a forked child: threads do not survive
    a fork, a pool inherited from the parent would never run anything)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1]._max_workers < workers:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="adanalytics-geo")
            _POOL = (os.getpid(), pool)
        return _POOL[1]


if hasattr(os, "register_at_fork"):  # the lock may be held by a thread that is gone
    os.register_at_fork(after_in_child=lambda: globals().update(_POOL_LOCK=threading.Lock()))


def _hash_table(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Open-addressing table of ``keys`` (unique, >= 0): (slot keys, slot values =
    position in ``keys``, hash shift, longest probe sequence). At most 1/8 full, so a
    look-up of an absent key mostly stops at its first slot."""
    bits = max(10, int(len(keys) * 8 - 1).bit_length())
    size = 1 << bits
    shift = 64 - bits
    t_keys = np.full(size, _EMPTY, dtype=np.int64)
    t_vals = np.full(size, -1, dtype=np.int64)
    if len(keys) == 0:
        return t_keys, t_vals, shift, 0
    slot = (keys.view(np.uint64) * _HASH_MUL >> np.uint64(shift)).view(np.int64)
    pending = np.arange(len(keys), dtype=np.int64)
    probe = 0
    while pending.size:
        s = (slot[pending] + probe) & (size - 1)
        free = t_keys[s] == _EMPTY
        # among keys aiming at the same free slot the first wins, the others probe on
        uniq, first = np.unique(s[free], return_index=True)
        winners = pending[free][first]
        t_keys[uniq] = keys[winners]
        t_vals[uniq] = winners
        placed = np.zeros(len(keys), dtype=bool)
        placed[winners] = True
        pending = pending[~placed[pending]]
        if pending.size:
            probe += 1
    return t_keys, t_vals, shift, probe


@dataclass(frozen=True)
class _Dense:
    """A dense table over the bounding box of the occupied cells, when that box is small
    (an index of one city) and lies in the full-width bands: position in ``keys`` of
    each cell, -1 where empty, with a border of -1 all round so that a record outside
    the box is clamped onto the border instead of being masked."""

    b0: float  # first band of the box, minus 1 (the border)
    l0: float  # first longitude cell of the box, minus 1
    rows: int  # rows of the table (box + border)
    width: int  # columns of the table (box + border)
    table: np.ndarray  # int32, rows * width
    check_wrap: bool  # the box touches longitude cell 0 or n_lon0 - 1

    @staticmethod
    def build(spec: GridSpec, keys: np.ndarray) -> _Dense | None:
        if len(keys) == 0 or len(keys) >= 2**31:
            return None
        band = keys >> 32
        cell = keys & 0xFFFFFFFF
        lo, hi = spec.full_bands
        if band.min() < lo or band.max() > hi:
            return None
        rows = int(band.max() - band.min()) + 3
        width = int(cell.max() - cell.min()) + 3
        if rows * width > min(_DENSE_MAX_CELLS, max(1 << 16, _DENSE_CELLS_PER_KEY * len(keys))):
            return None
        table = np.full(rows * width, -1, dtype=np.int32)
        table[(band - band.min() + 1) * width + (cell - cell.min() + 1)] = np.arange(
            len(keys), dtype=np.int32)
        return _Dense(
            b0=float(band.min() - 1), l0=float(cell.min() - 1), rows=rows, width=width,
            table=table,
            check_wrap=bool(cell.min() == 0 or cell.max() == spec.n_lon0 - 1),
        )

    def lookup(self, spec: GridSpec, lat: np.ndarray,
               lon: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(query positions, position in ``keys``) of the records in occupied cells, or
        ``None`` when a longitude of the chunk wraps (then the general path runs).

        The band and longitude cell are computed with exactly the operations of
        :meth:`GridSpec.cell_keys`. A record outside the full bands is outside the box
        (its cell is never indexed here), so its wrong cell count does not matter; NaN
        lands on the border (``fmax``/``fmin`` drop NaN).
        """
        n = float(spec.n_lon0)
        x = lon + 180.0
        x *= n
        x /= 360.0
        np.floor(x, out=x)
        if self.check_wrap and x.size and not (x.min() >= 0.0 and x.max() < n):
            return None
        x -= self.l0
        np.fmax(x, 0.0, out=x)
        np.fmin(x, self.width - 1.0, out=x)
        b = lat + 90.0
        b /= spec.height_deg
        np.floor(b, out=b)
        b -= self.b0
        np.fmax(b, 0.0, out=b)
        np.fmin(b, self.rows - 1.0, out=b)
        b *= self.width
        b += x
        v = self.table.take(b.astype(np.int64))
        qi = np.flatnonzero(v >= 0)
        return qi, v.take(qi).astype(np.int64)


@dataclass(frozen=True)
class CellIndex:
    """Establishments (or any points) indexed by the cells their discs may reach.

    Build once per radius with :func:`build_index`; query with :meth:`candidates` or
    :meth:`within`. Small (a few cells per point) and picklable, so Dask and Spark ship it
    to workers as a broadcast (the look-up tables derived from ``keys`` are rebuilt on
    arrival, not shipped).
    """

    spec: GridSpec
    lat: np.ndarray
    lon: np.ndarray
    keys: np.ndarray  # sorted unique cell keys
    starts: np.ndarray  # len(keys) + 1 offsets into items
    items: np.ndarray  # point indices, grouped by key
    # --- derived at construction: look-up tables of ``keys`` and per-point constants
    _dense: _Dense | None = field(init=False, repr=False, compare=False)
    _t_keys: np.ndarray = field(init=False, repr=False, compare=False)
    _t_vals: np.ndarray = field(init=False, repr=False, compare=False)
    _shift: int = field(init=False, repr=False, compare=False)
    _probes: int = field(init=False, repr=False, compare=False)
    _counts: np.ndarray = field(init=False, repr=False, compare=False)
    _rad_lat: np.ndarray = field(init=False, repr=False, compare=False)
    _rad_lon: np.ndarray = field(init=False, repr=False, compare=False)
    _cos_lat: np.ndarray = field(init=False, repr=False, compare=False)
    _valid: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = np.ascontiguousarray(self.keys, dtype=np.int64)
        starts = np.ascontiguousarray(self.starts, dtype=np.int64)
        dense = _Dense.build(self.spec, keys)
        if dense is None:
            t_keys, t_vals, shift, probes = _hash_table(keys)
        else:  # not needed
            t_keys, t_vals, shift, probes = np.empty(0, np.int64), np.empty(0, np.int64), 0, 0
        lat = np.ascontiguousarray(self.lat, dtype=np.float64)
        lon = np.ascontiguousarray(self.lon, dtype=np.float64)
        rad_lat = np.radians(lat)
        derived = {
            "lat": lat, "lon": lon, "keys": keys, "starts": starts,
            "items": np.ascontiguousarray(self.items, dtype=np.int64), "_dense": dense,
            "_t_keys": t_keys, "_t_vals": t_vals, "_shift": shift, "_probes": probes,
            "_counts": np.diff(starts),
            "_rad_lat": rad_lat, "_rad_lon": np.radians(lon), "_cos_lat": np.cos(rad_lat),
            "_valid": bool(np.all(np.abs(lat) <= 90.0) and np.all(np.abs(lon) <= 180.0)),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # ship the index, not its look-up tables (rebuilt in __post_init__)
        return (CellIndex, (self.spec, self.lat, self.lon, self.keys, self.starts, self.items))

    # --- look-up ----------------------------------------------------------------------
    def _lookup(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions, position in ``self.keys``) of the records whose cell is
        indexed - the records' cells as :meth:`GridSpec.cell_keys` computes them."""
        if self._dense is not None:
            found = self._dense.lookup(self.spec, lat, lon)
            if found is not None:
                return found
        return self._occupied(self.spec.cell_keys(lat, lon))

    def _occupied(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions, position in ``self.keys``) of the keys that are indexed."""
        if not len(self._t_keys):  # dense index: a chunk that needed the general path
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            qi = np.flatnonzero(self.keys.take(pos) == keys)
            return qi, pos.take(qi)
        h = (keys.view(np.uint64) * _HASH_MUL >> np.uint64(self._shift)).view(np.int64)
        found = self._t_keys.take(h)
        hit = found == keys
        qi = np.flatnonzero(hit)
        val = self._t_vals.take(h.take(qi))
        if self._probes:
            # slots taken by another key: probe on (few: the table is at most 1/8 full)
            pend = np.flatnonzero((found != _EMPTY) & ~hit)
            if pend.size:
                more_q, more_v = [qi], [val]
                mask = len(self._t_keys) - 1
                for step in range(1, self._probes + 1):
                    s = (h.take(pend) + step) & mask
                    found = self._t_keys.take(s)
                    hit = found == keys.take(pend)
                    more_q.append(pend[hit])
                    more_v.append(self._t_vals.take(s[hit]))
                    pend = pend[(found != _EMPTY) & ~hit]
                    if not pend.size:
                        break
                qi = np.concatenate(more_q)
                val = np.concatenate(more_v)
                order = np.argsort(qi, kind="stable")
                qi, val = qi[order], val[order]
        return qi, val

    def _expand(self, qi: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (query, point) pair of the occupied cells found, in (query, item) order."""
        start = self.starts.take(val)
        count = self._counts.take(val)
        if count.size == 0 or count.max() == 1:
            return qi, self.items.take(start)
        total = np.cumsum(count)
        start -= total
        start += count  # start - (number of pairs before this query)
        pos = np.repeat(start, count)
        pos += np.arange(len(pos), dtype=np.int64)
        return np.repeat(qi, count), self.items.take(pos)

    def _map(self, fn, n: int, threads: int | None) -> list[tuple[np.ndarray, ...]]:  # type: ignore[no-untyped-def]
        """``fn(a, b)`` over the chunks of ``range(n)``, in order, on worker threads."""
        bounds = [(i, min(i + _CHUNK, n)) for i in range(0, n, _CHUNK)]
        workers = min(_threads() if threads is None else max(1, threads), len(bounds))
        if workers <= 1:
            return [fn(a, b) for a, b in bounds]
        # contiguous runs of chunks per task keep the results in query order
        per = -(-len(bounds) // (workers * 4))
        tasks = [bounds[i:i + per] for i in range(0, len(bounds), per)]
        return [r for part in _pool(workers).map(lambda ts: [fn(a, b) for a, b in ts], tasks)
                for r in part]

    def candidates(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query index, point index) pairs sharing a cell - a superset of the matches."""
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        if len(self.keys) == 0 or len(lat) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)

        def chunk(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            qi, val = self._lookup(lat[a:b], lon[a:b])
            pq, pp = self._expand(qi, val)
            return pq + a, pp

        parts = self._map(chunk, len(lat), None)
        return (np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False),
                np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False))

    def within(
        self, lat: np.ndarray, lon: np.ndarray, radius_m: float | None = None, *,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, point index, distance m) of every pair closer than the radius.

        Strictly closer: a pair at exactly ``radius_m`` is not a match. ``radius_m``
        may be smaller than the index's own radius (never larger). Pairs come in query
        order (then point order inside a cell). ``threads``: worker threads (default:
        the process' cores, or 1 when called from a worker thread).
        """
        r = self.spec.radius_m if radius_m is None else float(radius_m)
        if r > self.spec.radius_m:
            msg = f"radius {r} m exceeds the index radius {self.spec.radius_m} m"
            raise ValueError(msg)
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        if len(self.keys) == 0 or len(lat) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
        hav_r = _hav(r / EARTH_RADIUS_M)
        bound = hav_r * (1.0 + _PREFILTER_REL) + math.sqrt(hav_r) * _PREFILTER_ABS

        def chunk(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            la, lo = lat[a:b], lon[a:b]
            qi, val = self._lookup(la, lo)
            pq, pp = self._expand(qi, val)
            sel, d = self._distances(la, lo, pq, pp, r, bound)
            return pq.take(sel) + a, pp.take(sel), d

        parts = self._map(chunk, len(lat), threads)
        return (np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False),
                np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False),
                np.concatenate([p[2] for p in parts]))

    def _distances(self, lat: np.ndarray, lon: np.ndarray, qi: np.ndarray, pi: np.ndarray,
                   r: float, bound: float) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the pair list, distances) of the pairs closer than ``r``.

        Exactly :func:`haversine_m` decides (the same operations on the same values:
        ``np.radians`` and ``np.cos`` of the points are computed once at construction).
        Before it, a cheap lower bound of the haversine term ``a = hav(dphi) +
        cos(p1) cos(p2) hav(dlambda)`` drops the pairs that are certainly too far:
        ``sin(x/2)**2 >= x**2/4 - x**4/48`` for ``|x| <= pi``, ``cos(p1) >= cos(p2) -
        |dphi|`` (cos is 1-Lipschitz) and cos >= 0 on [-90, 90] degrees. A pair goes
        only when the bound exceeds ``hav(r/R)`` by a slack (relative 1e-7, plus an
        absolute part for tiny radii) far above the rounding error of either side; then
        its exact distance is > r. Coordinates outside [-90, 90] x [-180, 180] (never
        valid input) skip the pre-filter.
        """
        p1 = np.radians(lat.take(qi))
        l1 = np.radians(lon.take(qi))
        dphi = self._rad_lat.take(pi)
        dphi -= p1  # p2 - p1, as haversine_m
        dl = self._rad_lon.take(pi)
        dl -= l1  # radians(lon2) - radians(lon1), as haversine_m
        c2 = self._cos_lat.take(pi)
        if p1.size and self._valid and (
                p1.min() >= -_HALF_PI and p1.max() <= _HALF_PI
                and l1.min() >= -math.pi and l1.max() <= math.pi):
            x = np.square(dphi)
            y = np.abs(dl)
            np.minimum(y, _TWO_PI - y, out=y)  # the short way round the antimeridian
            np.square(y, out=y)
            c = np.abs(dphi)
            np.subtract(c2, c, out=c)
            np.maximum(c, 0.0, out=c)
            np.square(c, out=c)
            lb = x * (1.0 / 48.0)
            np.subtract(0.25, lb, out=lb)
            lb *= x
            x = y * (1.0 / 48.0)
            np.subtract(0.25, x, out=x)
            x *= y
            x *= c
            lb += x
            sel = np.flatnonzero(lb <= bound)
            p1, dphi, dl, c2 = p1.take(sel), dphi.take(sel), dl.take(sel), c2.take(sel)
        else:
            sel = np.arange(p1.size, dtype=np.int64)
        # haversine_m from here on, in place
        dphi /= 2.0
        np.sin(dphi, out=dphi)
        np.square(dphi, out=dphi)  # x ** 2 is x * x in numpy
        dl /= 2.0
        np.sin(dl, out=dl)
        np.square(dl, out=dl)
        c = np.cos(p1)
        c *= c2
        c *= dl
        dphi += c
        np.minimum(dphi, 1.0, out=dphi)
        np.sqrt(dphi, out=dphi)
        np.arcsin(dphi, out=dphi)
        dphi *= _EARTH_DIAMETER_M
        ok = np.flatnonzero(dphi < r)
        return sel.take(ok), dphi.take(ok)


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
