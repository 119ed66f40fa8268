"""Property-based tests: every analysis equals the brute-force oracle of ``tests/brute.py``
on random small datasets, and the grid index equals an all-pairs search anywhere on the
globe (poles and antimeridian included).

Examples per test: ``ADANALYTICS_HYPOTHESIS_EXAMPLES`` (default 25) - kept small so the
suite stays fast on every engine.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adanalytics.geo import build_index, haversine_m
from adanalytics.semantics import EARTH_RADIUS_M
from tests import brute
from tests.builders import LAT0, LON0
from tests.helpers import assert_equal_data, offset, open_frames

EXAMPLES = int(os.environ.get("ADANALYTICS_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Positions are drawn on a 0.37 m lattice: distances then never sit (to float
#: precision) exactly on a 50 m / 500 m / 10 m boundary, where engines computing the
#: same haversine in different floating-point order could legitimately disagree.
STEP_M = 0.37
TZS = ["America/Recife", "Asia/Tokyo", "UTC", "America/New_York"]
#: Base instants around a local month boundary, and mid-month (DST in New York).
BASES = ["2024-01-31T22:00:00Z", "2024-02-01T02:00:00Z", "2024-03-15T12:00:00Z"]
CATEGORIES = ["bar", "cafe", "Gym", "gym"]


def _ts(base: str, minutes: int, seconds: int = 0) -> str:
    t = pd.Timestamp(base) + pd.Timedelta(minutes=minutes, seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid dataset around (LAT0, LON0) with its time zone under key ``tz``.

    Locations are per-user tracks (0-20 min between events, equal instants included) so
    that visits, attribution windows and approaches all happen.
    """
    int_ids = draw(st.booleans())

    def ident(prefix: str, i: int) -> Any:
        return 100 * (ord(prefix[0]) % 10) + i if int_ids else f"{prefix}{i}"

    base = draw(st.sampled_from(BASES))
    lattice = st.integers(-1200, 1200)  # +-444 m
    n_est = draw(st.integers(1, 4))
    est_pos = [(draw(lattice) * STEP_M, draw(lattice) * STEP_M) for _ in range(n_est)]
    ests = [(ident("e", i), f"E{i}", draw(st.sampled_from(CATEGORIES)),
             *offset(LAT0, LON0, north_m=n, east_m=e)) for i, (n, e) in enumerate(est_pos)]
    n_camp = draw(st.integers(1, 3))
    day0 = pd.Timestamp(base).normalize()
    camps = []
    for i in range(n_camp):
        a, b = sorted(draw(st.integers(-2, 2)) for _ in range(2))
        camps.append((ident("c", i), f"C{i}", (day0 + pd.Timedelta(days=a)).date().isoformat(),
                      (day0 + pd.Timedelta(days=b)).date().isoformat()))
    n_ads = draw(st.integers(1, 5))
    ads = [(ident("a", i), camps[draw(st.integers(0, n_camp - 1))][0],
            ests[draw(st.integers(0, n_est - 1))][0], draw(st.sampled_from(["food", "tech", "Food"])))
           for i in range(n_ads)]
    users = [ident("u", i) for i in range(draw(st.integers(1, 3)))]

    near_est = st.tuples(st.integers(0, n_est - 1), st.integers(-200, 200), st.integers(-200, 200))
    locs = []
    for u in users:
        t = draw(st.integers(-600, 300))
        for _ in range(draw(st.integers(0, 14))):
            t += draw(st.integers(0, 16))
            if draw(st.booleans()):  # near an establishment (within ~105 m)
                k, dn, de = draw(near_est)
                n_m, e_m = est_pos[k][0] + dn * STEP_M, est_pos[k][1] + de * STEP_M
            else:
                n_m, e_m = draw(lattice) * STEP_M * 1.5, draw(lattice) * STEP_M * 1.5
            locs.append((u, *offset(LAT0, LON0, north_m=n_m, east_m=e_m), _ts(base, t)))

    # interactions: free ones, and ones anchored on a location event of the same user at
    # the attribution-window edges (0, 6 h, 6 h + 1 s, after the event)
    anchors = [pd.Timedelta(0), pd.Timedelta(hours=6), pd.Timedelta(hours=6, seconds=1),
               pd.Timedelta(hours=1), pd.Timedelta(hours=1, seconds=1), pd.Timedelta(seconds=-1)]
    inter = []
    for _ in range(draw(st.integers(0, 25))):
        user = draw(st.sampled_from(users))
        own = [r for r in locs if r[0] == user]
        if own and draw(st.booleans()):
            t_loc = pd.Timestamp(draw(st.sampled_from(own))[3]) - draw(st.sampled_from(anchors))
            ts = t_loc.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            ts = _ts(base, draw(st.integers(-600, 600)), draw(st.sampled_from([0, 0, 1, 59])))
        inter.append((user, draw(st.sampled_from(ads))[0],
                      draw(st.sampled_from(["view", "view", "click"])), ts))

    def cols(names: list[str], recs: list[tuple]) -> dict[str, list[Any]]:
        return {c: [r[i] for r in recs] for i, c in enumerate(names)}

    return {
        "tz": draw(st.sampled_from(TZS)),
        "campaigns": cols(["campaign_id", "name", "start_date", "end_date"], camps),
        "ads": cols(["ad_id", "campaign_id", "establishment_id", "category"], ads),
        "establishments": cols(["establishment_id", "name", "category", "lat", "lon"], ests),
        "interactions": cols(["user_id", "ad_id", "action", "ts"], inter),
        "locations": cols(["user_id", "lat", "lon", "ts"], locs),
    }


def _open(data: dict[str, Any], engine: str) -> tuple[Any, dict[str, Any], str]:
    tables = {k: v for k, v in data.items() if k != "tz"}
    return open_frames(tables, engine, tz=data["tz"]), tables, data["tz"]


def _check(label: str, result: Any, expected: dict[str, list[Any]]) -> None:
    try:
        assert_equal_data(result, expected)
    except AssertionError as exc:
        raise AssertionError(f"{label}: {exc}") from None


@SETTINGS
@given(data=datasets(), radius=st.sampled_from([50.0, 50.0, 120.0]),
       window_min=st.sampled_from([360, 360, 60]))
def test_batch_analyses_match_brute_force(engine: str, data: dict[str, Any], radius: float,
                                          window_min: int) -> None:
    """Every batch analysis, both groupings, on one dataset (one load per example keeps
    the test fast on the distributed engines too)."""
    ds, tables, tz = _open(data, engine)
    window = timedelta(minutes=window_min)
    for by in ("total", "month"):
        _check(f"ctr(by={by})", ds.ctr(by=by), brute.ctr(tables, by=by, tz=tz))
        _check(f"visits(by={by}, radius_m={radius})", ds.visits(by=by, radius_m=radius),
               brute.visits(tables, by=by, tz=tz, radius_m=radius))
        _check(f"attribution(by={by}, window={window})",
               ds.attribution(by=by, window=pd.Timedelta(window)),
               brute.attribution(tables, by=by, tz=tz, window=window))
        _check(f"category_hourly(by={by})", ds.category_hourly(by=by),
               brute.category_hourly(tables, by=by, tz=tz))
    _check("interaction_profile", ds.interaction_profile(),
           brute.interaction_profile(tables, tz=tz))
    _check("preferred_ad_category", ds.preferred_ad_category(),
           brute.preferred_ad_category(tables, tz=tz))
    _check(f"visit_profile(radius_m={radius})", ds.visit_profile(radius_m=radius),
           brute.visit_profile(tables, tz=tz, radius_m=radius))
    _check(f"preferred_establishment_category(radius_m={radius})",
           ds.preferred_establishment_category(radius_m=radius),
           brute.preferred_establishment_category(tables, tz=tz, radius_m=radius))


@SETTINGS
@given(data=datasets(), params=st.sampled_from([
    {},
    {"approach_radius_m": 200.0, "max_gap": timedelta(minutes=5), "min_closing_m": 0.0,
     "cooldown": timedelta(minutes=10)},
    {"approach_radius_m": 300.0, "min_closing_m": 25.0, "cooldown": timedelta(0)},
    {"cooldown": timedelta(minutes=20)},
]))
def test_recommendations_match_brute_force(engine: str, data: dict[str, Any],
                                           params: dict[str, Any]) -> None:
    ds, tables, tz = _open(data, engine)
    kwargs = {k: pd.Timedelta(v) if isinstance(v, timedelta) else v for k, v in params.items()}
    assert_equal_data(ds.recommendations(**kwargs),
                      brute.recommendations(tables, tz=tz, **params))


# --- the grid index -------------------------------------------------------------------

#: Regions where cell layouts are hardest: poles, antimeridian, both at once, equator.
REGIONS = [(90.0, 0.0), (-90.0, 0.0), (89.9999, 180.0), (0.0, 180.0), (0.0, -180.0),
           (-45.0, 179.9999), (60.0, -179.9995), (0.0, 0.0), (LAT0, LON0), (75.5, 10.0),
           (82.8, -120.0)]


def _wrap_lon(lon: np.ndarray) -> np.ndarray:
    out = (lon + 180.0) % 360.0 - 180.0
    # keep the +180 edge itself reachable (it is a valid input)
    return np.where((lon == 180.0), 180.0, out)


@st.composite
def point_clouds(draw: st.DrawFn, radius: float) -> tuple[np.ndarray, ...]:
    """Indexed points and query points within a few radii of one hard region."""
    lat0, lon0 = draw(st.sampled_from(REGIONS))
    r_deg = radius / EARTH_RADIUS_M * 180.0 / np.pi
    spread = draw(st.sampled_from([1.0, 3.0, 10.0])) * r_deg

    def cloud(n: int) -> tuple[np.ndarray, np.ndarray]:
        dlat = np.array(draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))) * spread
        dlon_raw = np.array(draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n)))
        lat = np.clip(lat0 + dlat, -90.0, 90.0)
        # near a pole a few radii cover every longitude
        coslat = max(np.cos(np.radians(min(abs(lat0), 89.999999))), 1e-6)
        dlon = dlon_raw * min(spread / coslat, 180.0)
        exact = draw(st.lists(st.sampled_from([None, 90.0, -90.0, 180.0, -180.0]),
                              min_size=n, max_size=n))
        lon = _wrap_lon(lon0 + dlon)
        for i, x in enumerate(exact):
            if x in (90.0, -90.0) and np.sign(x) == np.sign(lat0):
                lat[i] = x
            elif x in (180.0, -180.0) and abs(lon0) == 180.0:
                lon[i] = x
        return lat, lon

    plat, plon = cloud(draw(st.integers(1, 12)))
    qlat, qlon = cloud(draw(st.integers(1, 40)))
    # a few queries exactly on indexed points
    qlat = np.concatenate([qlat, plat[:2]])
    qlon = np.concatenate([qlon, plon[:2]])
    return plat, plon, qlat, qlon


def _brute_pairs(plat, plon, qlat, qlon, radius: float) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    d = haversine_m(qlat[:, None], qlon[:, None], plat[None, :], plon[None, :])
    qi, pi = np.nonzero(d < radius)
    return set(zip(qi.tolist(), pi.tolist(), strict=True))


@pytest.mark.parametrize("radius", [50.0, 500.0])
@settings(max_examples=max(EXAMPLES * 4, 50), deadline=None)
@given(data=st.data())
def test_grid_index_within_equals_all_pairs(radius: float, data: st.DataObject) -> None:
    plat, plon, qlat, qlon = data.draw(point_clouds(radius))
    index = build_index(plat, plon, radius)
    qi, pi, d = index.within(qlat, qlon)
    got = set(zip(qi.tolist(), pi.tolist(), strict=True))
    assert len(got) == len(qi), "duplicate pairs"
    assert got == _brute_pairs(plat, plon, qlat, qlon, radius)
    np.testing.assert_allclose(d, haversine_m(qlat[qi], qlon[qi], plat[pi], plon[pi]))
    # a smaller radius on the same index is the same as a fresh search
    small = radius / 3
    qi2, pi2, _ = index.within(qlat, qlon, small)
    assert set(zip(qi2.tolist(), pi2.tolist(), strict=True)) == _brute_pairs(
        plat, plon, qlat, qlon, small)


@pytest.mark.parametrize("radius", [50.0, 500.0])
def test_grid_index_known_hard_points(radius: float) -> None:
    # both poles (any longitude is the same point), both sides of the antimeridian
    r = radius
    plat = np.array([90.0, -90.0, 0.0, 0.0, 10.0])
    plon = np.array([0.0, 123.0, 180.0, -180.0, 179.99999])
    near_pole = 90.0 - (r * 0.9) / EARTH_RADIUS_M * 180 / np.pi
    qlat = np.array([90.0, 90.0, near_pole, -90.0, 0.0, 0.0, 0.0, 10.0])
    qlon = np.array([45.0, -180.0, 77.0, -5.0, -179.99999, 179.99999, 180.0, -179.99999])
    index = build_index(plat, plon, r)
    qi, pi, _ = index.within(qlat, qlon)
    got = set(zip(qi.tolist(), pi.tolist(), strict=True))
    assert got == _brute_pairs(plat, plon, qlat, qlon, r)
    # the pole is reached from any longitude; -180 and 180 are the same meridian
    assert {(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (4, 3), (6, 2), (6, 3)} <= got
