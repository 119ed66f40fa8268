"""The grid index of :mod:`adanalytics.geo` against a brute force over every pair.

``CellIndex.within`` must return exactly the pairs whose haversine distance
(``geo.haversine_m``, bit for bit) is strictly below the radius - in the middle of a
city, near the poles, across the antimeridian, at 50 m and 500 m, on both look-up paths
(dense table and hash table) and with records right at the radius.
"""

from __future__ import annotations

import math
import os
import pickle
import time
import zlib

import numpy as np
import pytest

from adanalytics import geo
from adanalytics.semantics import EARTH_RADIUS_M

RECIFE = (-8.0631, -34.8711)


def brute(qlat, qlon, plat, plon, r):  # type: ignore[no-untyped-def]
    """Every (query, point, distance) closer than r, in (query, point) order."""
    d = geo.haversine_m(qlat[:, None], qlon[:, None], plat[None, :], plon[None, :])
    q, p = np.nonzero(d < r)
    return q, p, d[q, p]


def destination(lat, lon, bearing, dist_m):  # type: ignore[no-untyped-def]
    """Points ``dist_m`` from (lat, lon) along ``bearing`` (radians) on the sphere."""
    p1, l1, dd = np.radians(lat), np.radians(lon), dist_m / EARTH_RADIUS_M
    p2 = np.arcsin(np.sin(p1) * np.cos(dd) + np.cos(p1) * np.sin(dd) * np.cos(bearing))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(dd) * np.cos(p1),
                         np.cos(dd) - np.sin(p1) * np.sin(p2))
    lon2 = (np.degrees(l2) + 180.0) % 360.0 - 180.0
    return np.clip(np.degrees(p2), -90.0, 90.0), lon2


def scene(rng, kind, n_points, r):  # type: ignore[no-untyped-def]
    """Points of one kind and queries around them (some right at the radius)."""
    if kind == "city":
        plat = RECIFE[0] + rng.normal(0, 0.02, n_points)
        plon = RECIFE[1] + rng.normal(0, 0.02, n_points)
    elif kind == "world":
        plat = np.degrees(np.arcsin(rng.uniform(-1, 1, n_points)))
        plon = rng.uniform(-180, 180, n_points)
    elif kind == "poles":
        plat = rng.choice([-1.0, 1.0], n_points) * (90.0 - rng.exponential(r / 111_195 * 3, n_points))
        plat[:2] = [90.0, -90.0]
        plon = rng.uniform(-180, 180, n_points)
    elif kind == "antimeridian":
        plat = rng.uniform(-70, 70, n_points)
        plon = rng.choice([-1.0, 1.0], n_points) * (180.0 - rng.exponential(r / 111_195, n_points))
        plon[:2] = [180.0, -180.0]
    else:
        raise AssertionError(kind)
    k = 40
    src = rng.integers(0, n_points, n_points * k)
    bearing = rng.uniform(0, 2 * math.pi, len(src))
    dist = np.concatenate([
        rng.uniform(0, 2.5 * r, len(src) // 2),  # around
        r * (1.0 + rng.choice([-1, 1], len(src) - len(src) // 2) * 10.0 ** rng.uniform(-15, -6, len(src) - len(src) // 2)),  # at the radius
    ])
    qlat, qlon = destination(plat[src], plon[src], bearing, dist)
    return plat, plon, qlat, qlon


@pytest.mark.parametrize("r", [50.0, 500.0])
@pytest.mark.parametrize("kind", ["city", "world", "poles", "antimeridian"])
def test_within_equals_brute_force(kind: str, r: float) -> None:
    rng = np.random.default_rng([zlib.crc32(kind.encode()), int(r)])
    plat, plon, qlat, qlon = scene(rng, kind, 150, r)
    index = geo.build_index(plat, plon, r)
    got = index.within(qlat, qlon)
    want = brute(qlat, qlon, plat, plon, r)
    assert len(want[0]) > 100
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # same pairs, same order, same bits
    # some pairs really were at the radius, on both sides
    d = geo.haversine_m(qlat[:, None], qlon[:, None], plat[None, :], plon[None, :])
    assert (np.abs(d - r) < 1e-6).sum() > 50


def test_smaller_radius_and_limits() -> None:
    rng = np.random.default_rng(1)
    plat, plon, qlat, qlon = scene(rng, "city", 100, 500.0)
    index = geo.build_index(plat, plon, 500.0)
    for r in (500.0, 120.0, 50.0, 0.5):
        for g, w in zip(index.within(qlat, qlon, r), brute(qlat, qlon, plat, plon, r), strict=True):
            np.testing.assert_array_equal(g, w)
    with pytest.raises(ValueError, match="exceeds the index radius"):
        index.within(qlat, qlon, 500.5)
    q, p, d = index.within(np.empty(0), np.empty(0))
    assert len(q) == len(p) == len(d) == 0
    empty = geo.build_index(np.empty(0), np.empty(0), 50.0)
    assert all(len(a) == 0 for a in empty.within(qlat, qlon))


def test_exactly_at_the_radius_is_out() -> None:
    index = geo.build_index(np.array([0.0]), np.array([0.0]), 50.0)
    # along the equator, d = R * dlon exactly as haversine computes it
    lon = np.array([49.999, 50.0, 50.001]) / EARTH_RADIUS_M * 180.0 / math.pi
    d = geo.haversine_m(0.0, lon, 0.0, 0.0)
    q, _, dist = index.within(np.zeros(3), lon)
    np.testing.assert_array_equal(q, np.flatnonzero(d < 50.0))
    np.testing.assert_array_equal(dist, d[d < 50.0])


def test_both_lookup_paths_and_many_chunks() -> None:
    rng = np.random.default_rng(2)
    plat, plon, _, _ = scene(rng, "city", 200, 50.0)
    n = 2 * geo._CHUNK + 17  # several chunks, threads
    qlat = RECIFE[0] + rng.normal(0, 0.02, n)
    qlon = RECIFE[1] + rng.normal(0, 0.02, n)
    dense = geo.build_index(plat, plon, 50.0)
    assert dense._dense is not None  # one city: a dense table
    want = brute(qlat, qlon, plat, plon, 50.0)
    for threads in (1, 2, None):
        for g, w in zip(dense.within(qlat, qlon, threads=threads), want, strict=True):
            np.testing.assert_array_equal(g, w)
    # the same points plus one far away: the box is too large, a hash table instead
    hashed = geo.build_index(np.append(plat, 50.0), np.append(plon, 100.0), 50.0)
    assert hashed._dense is None
    for g, w in zip(hashed.within(qlat, qlon, threads=2), want, strict=True):
        np.testing.assert_array_equal(g, w)
    cq, cp = dense.candidates(qlat, qlon)
    hq, hp = hashed.candidates(qlat, qlon)
    np.testing.assert_array_equal(cq, hq)
    np.testing.assert_array_equal(cp, hp)


def test_dense_table_with_wrapping_longitudes() -> None:
    # points whose discs reach cell 0 (just east of -180) without wrapping: a record at
    # lon = +180 is in cell n, i.e. cell 0 after the modulo, and is a candidate of them
    plat = np.array([10.0, 10.0001, 10.0003])
    plon = np.array([-179.9994, -179.9993, -179.9990])
    index = geo.build_index(plat, plon, 50.0)
    assert index._dense is not None and index._dense.check_wrap
    qlat = np.array([10.0, 10.0001, 10.0002, 10.0003, 0.0, 10.00005])
    qlon = np.array([180.0, -179.99999, -179.9992, -179.9989, 180.0, -179.99935])
    for g, w in zip(index.within(qlat, qlon), brute(qlat, qlon, plat, plon, 50.0), strict=True):
        np.testing.assert_array_equal(g, w)
    assert len(index.within(qlat, qlon)[0]) >= 3
    cq, cp = index.candidates(qlat, qlon)
    assert (0, 0) in set(zip(cq.tolist(), cp.tolist(), strict=True))  # lon = 180 -> cell 0


def reference_keys(spec: geo.GridSpec, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The key formula, element by element in plain Python (what Spark SQL computes)."""
    out = []
    for la, lo in zip(lat.tolist(), lon.tolist(), strict=True):
        b = min(max(math.floor((la + 90.0) / spec.height_deg), 0), spec.n_bands - 1)
        q = min(b, spec.n_bands - 1 - b)
        shift = sum(1 for z in spec.zone_q if q < z)
        n = max(spec.n_lon0 >> shift, 1)
        i = math.floor((lo + 180.0) * n / 360.0) % n
        out.append((b << 32) | i)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("r", [50.0, 500.0])
def test_cell_keys_are_the_formula(r: float) -> None:
    spec = geo.grid_spec(r)
    rng = np.random.default_rng(3)
    lat = np.concatenate([[90.0, -90.0, 0.0, 89.99999, -89.99999, 60.0, -60.0, 45.0],
                          rng.uniform(-90, 90, 3000), rng.uniform(-8.2, -7.9, 3000)])
    lon = np.concatenate([[180.0, -180.0, 180.0, -180.0, 179.9999999, 0.0, -0.0, 179.99999999],
                          rng.uniform(-180, 180, 3000), rng.uniform(-35.1, -34.8, 3000)])
    want = reference_keys(spec, lat, lon)
    np.testing.assert_array_equal(spec.cell_keys(lat, lon), want)  # general path
    city = slice(3008, None)
    np.testing.assert_array_equal(spec.cell_keys(lat[city], lon[city]), want[city])  # fast path
    for i in range(8):  # one by one
        assert spec.cell_keys(lat[i:i + 1], lon[i:i + 1])[0] == want[i]


def test_cell_order_groups_points_cell_by_cell_and_keeps_ties_in_order() -> None:
    rng = np.random.default_rng(4)
    lat = np.concatenate([rng.uniform(-8.2, -7.9, 4000), [90.0, -90.0, 0.0]])
    lon = np.concatenate([rng.uniform(-35.1, -34.8, 4000), [180.0, -180.0, 0.0]])
    order = geo.cell_order(lat, lon, 50.0)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(lat)))  # a permutation
    want = reference_keys(geo.grid_spec(50.0), lat, lon)
    keys = want[order]
    assert np.all(np.diff(keys) >= 0)
    same = np.flatnonzero(np.diff(keys) == 0)
    assert same.size and np.all(order[same] < order[same + 1])  # stable: ties in order
    assert geo.cell_order(lat[:0], lon[:0], 50.0).size == 0


def test_keys_are_pinned() -> None:
    # The layout other engines (Spark SQL) reproduce from GridSpec's constants: a change
    # here is a change of the key formula - update them together.
    spec = geo.grid_spec(50.0)
    assert (spec.n_bands, spec.n_lon0) == (399_904, 799_804)
    assert spec.zone_q[-1] == 66_650
    keys = spec.cell_keys(np.array([RECIFE[0], 0.0, 89.9999]), np.array([RECIFE[1], 0.0, 10.0]))
    assert keys.tolist() == [(182_037 << 32) | 322_429, (199_951 << 32) | 399_902,
                             (399_902 << 32) | 12]


def loop_replicate(spec: geo.GridSpec, lat: np.ndarray, lon: np.ndarray) -> set[tuple[int, int]]:
    """The replication written as a per-point loop (the original implementation)."""
    r_deg = spec.radius_deg * (1.0 + geo._MARGIN)
    hav_r = math.sin(spec.radius_m / EARTH_RADIUS_M * (1.0 + geo._MARGIN) / 2.0) ** 2
    out = set()
    for i, (phi, lam) in enumerate(zip(lat.tolist(), lon.tolist(), strict=True)):
        b_lo = int(spec.band(np.array([phi - r_deg]))[0])
        b_hi = int(spec.band(np.array([phi + r_deg]))[0])
        for b in range(b_lo, b_hi + 1):
            band_lo = b * spec.height_deg - 90.0
            lo = max(band_lo, phi - r_deg)
            hi = min(band_lo + spec.height_deg, phi + r_deg)
            worst = min(90.0, max(abs(lo), abs(hi)) + 1e-9)
            n = int(spec.lon_cells(np.array([b]))[0])
            denom = math.cos(phi * geo._DEG) * math.cos(worst * geo._DEG)
            ratio = hav_r / denom if denom > 0 else math.inf
            cells: range | list[int] = range(n)
            if ratio < 1.0:
                dl = math.degrees(2.0 * math.asin(math.sqrt(ratio))) * (1.0 + geo._MARGIN)
                lo_raw = math.floor((lam - dl + 180.0) * n / 360.0)
                hi_raw = math.floor((lam + dl + 180.0) * n / 360.0)
                if hi_raw - lo_raw + 1 < n:
                    cells = [(lo_raw + k) % n for k in range(hi_raw - lo_raw + 1)]
            out.update(((b << 32) | c, i) for c in cells)
    return out


@pytest.mark.parametrize("r", [50.0, 500.0, 20_000.0])
def test_replication_equals_the_loop(r: float) -> None:
    rng = np.random.default_rng(4)
    spec = geo.grid_spec(r)
    lat = np.concatenate([[90.0, -90.0, 89.9999, 0.0, 60.0], rng.uniform(-90, 90, 300)])
    lon = np.concatenate([[0.0, 180.0, -180.0, 179.99999, -179.9999], rng.uniform(-180, 180, 300)])
    keys, idx = geo.replicate_points(spec, lat, lon)
    got = set(zip(keys.tolist(), idx.tolist(), strict=True))
    assert len(got) == len(keys)  # no duplicates
    assert got == loop_replicate(spec, lat, lon)


def test_deterministic_and_picklable() -> None:
    rng = np.random.default_rng(5)
    plat, plon, qlat, qlon = scene(rng, "city", 200, 50.0)
    a = geo.build_index(plat, plon, 50.0)
    b = geo.build_index(plat.copy(), plon.copy(), 50.0)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.spec.cell_keys(qlat, qlon), b.spec.cell_keys(qlat, qlon))
    c = pickle.loads(pickle.dumps(a))
    for x, y in zip(a.within(qlat, qlon), c.within(qlat, qlon), strict=True):
        np.testing.assert_array_equal(x, y)
    # the look-up tables are rebuilt on arrival, not shipped
    assert len(pickle.dumps(a)) < 4 * (a.keys.nbytes + a.items.nbytes + a.starts.nbytes
                                       + a.lat.nbytes + a.lon.nbytes)


def test_haversine_scalar_and_arrays() -> None:
    assert geo.haversine_m(0.0, 0.0, 0.0, 0.0) == 0.0
    quarter = geo.haversine_m(0.0, 0.0, 90.0, 0.0)
    assert quarter == pytest.approx(math.pi / 2 * EARTH_RADIUS_M, rel=1e-12)
    d = geo.haversine_m(np.array([0.0, 10.0]), np.array([179.9, 0.0]), np.array([0.0, 10.0]),
                        np.array([-179.9, 0.0]))
    assert d[0] == pytest.approx(0.2 * math.pi / 180 * EARTH_RADIUS_M, rel=1e-9) and d[1] == 0.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python >= 3.12
def test_threads_work_after_fork() -> None:
    # a worker pool made before a fork has no threads in the child: it must be remade
    rng = np.random.default_rng(6)
    plat, plon = RECIFE[0] + rng.normal(0, 0.02, 100), RECIFE[1] + rng.normal(0, 0.02, 100)
    qlat = RECIFE[0] + rng.normal(0, 0.02, 3 * geo._CHUNK)
    qlon = RECIFE[1] + rng.normal(0, 0.02, 3 * geo._CHUNK)
    index = geo.build_index(plat, plon, 50.0)
    want = index.within(qlat, qlon, threads=2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        got = index.within(qlat, qlon, threads=2)
        os._exit(0 if all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)) else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("within() hung in a forked child")
