"""Question 7 - batch form of the real-time recommendation (SPEC §3.7), hand-worked.

Users walk along the meridian of an establishment: ``south(d)`` is a point ``d`` metres
south of it (exact distance). An event is an approach to E when the previous event of
the user is at most 15 min older, it is closer than 500 m to E, it closed in by >= 10 m,
and E has an ad whose campaign is active on the local date of the event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adanalytics.engines.pandas.recommendations import approach_places, cooldown_mask
from adanalytics.geo import haversine_m
from adanalytics.semantics import output_columns
from tests.builders import LAT0, LON0, dataset, iso, utc
from tests.helpers import assert_equal_data, collect, offset, open_frames

T0 = "2024-05-10T12:00:00Z"  # 09:00 local, inside the default campaign


def south(d: float, lat: float = LAT0, lon: float = LON0) -> tuple[float, float]:
    return offset(lat, lon, north_m=-d)


def track(user: object, steps: list[tuple[float, float]], t0: str = T0,
          lat: float = LAT0, lon: float = LON0) -> list[tuple]:
    """Location rows of ``user``: (minutes after t0, metres south of (lat, lon))."""
    return [(user, *south(d, lat, lon), iso(utc(t0) + pd.Timedelta(minutes=m))) for m, d in steps]


def at(m: float, t0: str = T0) -> pd.Timestamp:
    return utc(t0) + pd.Timedelta(minutes=m)


def _rows(*rows: tuple) -> dict[str, list]:
    cols = output_columns("recommendations")
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


def _run(locations: list[tuple], engine: str, **kwargs: object) -> pd.DataFrame:
    ds = open_frames(dataset(locations=locations, **kwargs), engine)
    return ds.recommendations()


def test_approach_emits_suggestion_with_event_ts_and_distance(engine: str) -> None:
    # u1: 600 m (outside) at +0, 400 m at +5 min: closing 200 m, inside 500 m -> suggest
    # a1 at +5 min, distance 400 m.
    assert_equal_data(_run(track("u1", [(0, 600), (5, 400)]), engine),
                      _rows(("u1", "e1", "a1", at(5), 400.0)))


def test_approach_radius_is_strict(engine: str) -> None:
    # u1 reaches 499 m -> suggested; u2 reaches 500.5 m -> not (not < 500).
    locs = track("u1", [(0, 700), (5, 499)]) + track("u2", [(0, 700), (5, 500.5)])
    assert_equal_data(_run(locs, engine), _rows(("u1", "e1", "a1", at(5), 499.0)))


def test_min_closing_10m(engine: str) -> None:
    # u1 closes 11 m (420 -> 409) -> suggested; u2 closes 9 m (420 -> 411) -> not;
    # u3 moves away (300 -> 400) -> not; u4 stands still (300 -> 300) -> not.
    locs = (track("u1", [(0, 420), (5, 409)]) + track("u2", [(0, 420), (5, 411)])
            + track("u3", [(0, 300), (5, 400)]) + track("u4", [(0, 300), (5, 300)]))
    assert_equal_data(_run(locs, engine), _rows(("u1", "e1", "a1", at(5), 409.0)))


def test_first_event_of_a_user_never_suggests(engine: str) -> None:
    # u1's only event is 10 m from e1: no previous event -> no approach.
    # u2's first event is at 100 m; its second at 50 m -> only the second.
    locs = track("u1", [(0, 10)]) + track("u2", [(0, 100), (1, 50)])
    assert_equal_data(_run(locs, engine), _rows(("u2", "e1", "a1", at(1), 50.0)))


def test_max_gap_15min_inclusive(engine: str) -> None:
    # u1: 15 min between events -> ok (<=); u2: 15 min 1 s -> not.
    locs = track("u1", [(0, 600), (15, 400)]) + track("u2", [(0, 600), (15 + 1 / 60, 400)])
    assert_equal_data(_run(locs, engine), _rows(("u1", "e1", "a1", at(15), 400.0)))


def test_gap_is_to_the_previous_event_not_the_previous_approach(engine: str) -> None:
    # u1: 600 m at 0, 590 m at 10 (closing 10 but outside 500), 400 at 20: gap 10 min
    # to the previous event -> suggested.
    locs = track("u1", [(0, 600), (10, 590), (20, 400)])
    assert_equal_data(_run(locs, engine), _rows(("u1", "e1", "a1", at(20), 400.0)))


def test_cooldown_one_hour(engine: str) -> None:
    far = [(15, 600), (25, 600), (35, 600), (45, 600), (55, 600)]
    # uA: approaches at 5 (emitted) and 64 (59 min later: suppressed)
    ua = track("uA", [(0, 600), (5, 400), *far, (64, 400)])
    # uB: approaches at 5 and 65 (exactly 60 min later: emitted)
    ub = track("uB", [(0, 600), (5, 400), *far, (65, 400)])
    # uC: approaches at 5 (emitted), 45 (suppressed, 40 min) and 75 (70 min after the
    # last *emitted* one -> emitted; a suppressed approach does not restart the cooldown,
    # otherwise 75 - 45 = 30 min would suppress it)
    uc = track("uC", [(0, 600), (5, 400), (15, 600), (25, 600), (35, 600), (45, 400),
                      (55, 600), (65, 600), (75, 400)])
    assert_equal_data(
        _run(ua + ub + uc, engine),
        _rows(("uA", "e1", "a1", at(5), 400.0),
              ("uB", "e1", "a1", at(5), 400.0), ("uB", "e1", "a1", at(65), 400.0),
              ("uC", "e1", "a1", at(5), 400.0), ("uC", "e1", "a1", at(75), 400.0)),
    )


def test_cooldown_is_per_user_and_establishment(engine: str) -> None:
    # e2 is 1200 m north of e1. uD approaches e1 at +5 (600 -> 400 m south of e1), then at
    # +10 is 750 m north of e1 = 450 m from e2 (it was 1600 m from e2): an approach to e2
    # within minutes of the e1 suggestion -> emitted too. uE approaches e1 at the same
    # time as uD: another user, emitted.
    e2_lat, e2_lon = offset(LAT0, LON0, north_m=1200.0)
    ests = [("e1", "P1", "cafe", LAT0, LON0), ("e2", "P2", "bar", e2_lat, e2_lon)]
    ads = [("a1", "c1", "e1", "food"), ("a2", "c1", "e2", "drinks")]
    locs = track("uD", [(0, 600), (5, 400), (10, -750)]) + track("uE", [(0, 600), (5, 400)])
    ds = open_frames(dataset(establishments=ests, ads=ads, locations=locs), engine)
    assert_equal_data(
        ds.recommendations(),
        _rows(("uD", "e1", "a1", at(5), 400.0), ("uD", "e2", "a2", at(10), 450.0),
              ("uE", "e1", "a1", at(5), 400.0)),
    )


def test_active_campaign_boundaries_in_local_time(engine: str) -> None:
    # e1's only ad belongs to c2, active 2024-03-10 .. 2024-03-20 (inclusive, local dates).
    # Recife is UTC-3; each user approaches (600 -> 400 m, 5 min apart) at t:
    #   uA 2024-03-10T02:59Z = 03-09 23:59 local -> inactive
    #   uB 2024-03-10T03:00Z = 03-10 00:00 local -> active
    #   uC 2024-03-21T02:59Z = 03-20 23:59 local -> active
    #   uD 2024-03-21T03:00Z = 03-21 00:00 local -> inactive
    cases = {"uA": "2024-03-10T02:59:00Z", "uB": "2024-03-10T03:00:00Z",
             "uC": "2024-03-21T02:59:00Z", "uD": "2024-03-21T03:00:00Z"}
    locs = [row for u, t in cases.items() for row in track(u, [(-5, 600), (0, 400)], t0=t)]
    data = dataset(campaigns=[("c2", "March", "2024-03-10", "2024-03-20")],
                   ads=[("a1", "c2", "e1", "food")], locations=locs)
    assert_equal_data(
        open_frames(data, engine).recommendations(),
        _rows(("uB", "e1", "a1", utc(cases["uB"]), 400.0),
              ("uC", "e1", "a1", utc(cases["uC"]), 400.0)),
    )
    # Asia/Tokyo (UTC+9): uT2 2024-03-09T15:00Z = 03-10 00:00 local -> active;
    # uT1 2024-03-09T14:59Z = 03-09 23:59 -> inactive; uA..uD are at 03-10 11:59,
    # 03-10 12:00, 03-21 11:59 and 03-21 12:00 local -> uA and uB active.
    cases_tokyo = {"uT1": "2024-03-09T14:59:00Z", "uT2": "2024-03-09T15:00:00Z"}
    locs_tokyo = [row for u, t in cases_tokyo.items()
                  for row in track(u, [(-5, 600), (0, 400)], t0=t)]
    data["locations"] = dataset(locations=locs + locs_tokyo)["locations"]
    assert_equal_data(
        open_frames(data, engine, tz="Asia/Tokyo").recommendations(),
        _rows(("uA", "e1", "a1", utc(cases["uA"]), 400.0),
              ("uB", "e1", "a1", utc(cases["uB"]), 400.0),
              ("uT2", "e1", "a1", utc(cases_tokyo["uT2"]), 400.0)),
    )


def test_inactive_establishment_does_not_block_others(engine: str) -> None:
    # e1 (only an ad of a 2023 campaign) and e2 (active ad) stand at the same place: the
    # approach suggests e2's ad only.
    ests = [("e1", "P1", "cafe", LAT0, LON0), ("e2", "P2", "bar", LAT0, LON0)]
    campaigns = [("c_old", "Old", "2023-01-01", "2023-12-31"),
                 ("c1", "Now", "2024-01-01", "2024-12-31")]
    ads = [("a_old", "c_old", "e1", "food"), ("a2", "c1", "e2", "drinks")]
    ds = open_frames(dataset(campaigns=campaigns, establishments=ests, ads=ads,
                             locations=track("u1", [(0, 600), (5, 400)])), engine)
    assert_equal_data(ds.recommendations(), _rows(("u1", "e2", "a2", at(5), 400.0)))


def test_establishments_without_ads_are_never_suggested(engine: str) -> None:
    # e0 (no ad at all) stands at the approached point, e2 (with an ad) 100 m north of
    # it: only e2 is suggested, at its own distance; e0 blocks nothing.
    n_lat, n_lon = offset(LAT0, LON0, north_m=100.0)
    ests = [("e0", "P0", "cafe", LAT0, LON0), ("e2", "P2", "bar", n_lat, n_lon)]
    ads = [("a2", "c1", "e2", "drinks")]
    ds = open_frames(dataset(establishments=ests, ads=ads,
                             locations=track("u1", [(0, 500), (5, 300)])), engine)
    assert_equal_data(ds.recommendations(), _rows(("u1", "e2", "a2", at(5),
                                                   haversine_m(*south(300), n_lat, n_lon))))


def test_approach_places_index_only_establishments_with_an_ad() -> None:
    est = pd.DataFrame({"establishment_id": ["e0", "e1", "e2"], "category": ["a", "b", "c"],
                        "lat": [LAT0] * 3, "lon": [LON0] * 3})
    places = approach_places(est, pd.Series(["e2", "e1", "e2"]), 500.0)
    assert list(places.establishment_id) == ["e1", "e2"]
    _, pi, _ = places.cells.within(np.array([LAT0]), np.array([LON0]), 500.0)
    assert sorted(places.establishment_id[pi]) == ["e1", "e2"]
    assert len(approach_places(est, pd.Series([], dtype=object), 500.0).establishment_id) == 0


def _place(i: int) -> tuple[float, float]:
    """Establishment ``i`` placed 5 km apart along the meridian."""
    return offset(LAT0, LON0, north_m=5000.0 * i)


def test_best_ad_is_highest_ctr_among_active_ads(engine: str) -> None:
    ests = [(f"e{i}", f"P{i}", "cafe", *_place(i)) for i in range(1, 6)]
    campaigns = [("c1", "Now", "2024-01-01", "2024-12-31"),
                 ("c_old", "Old", "2023-01-01", "2023-12-31")]
    ads = [
        # e1: a_old CTR 1.0 but inactive; a_low 1/4; a_high 1/2 -> a_high
        ("a_old", "c_old", "e1", "food"), ("a_low", "c1", "e1", "food"),
        ("a_high", "c1", "e1", "food"),
        # e2: a_noviews (3 clicks, no view: ranks last), a_zero (5 views, 0 clicks) -> a_zero
        ("a_noviews", "c1", "e2", "food"), ("a_zero", "c1", "e2", "food"),
        # e3: b2 and b1 both CTR 1/2 -> smallest ad_id b1
        ("b2", "c1", "e3", "food"), ("b1", "c1", "e3", "food"),
        # e4: only an ad that was never shown -> still suggested
        ("a_new", "c1", "e4", "food"),
        # e5: a_many 1 view 3 clicks (CTR 3.0: clicks > views allowed) beats a_half (1/2)
        ("a_half", "c1", "e5", "food"), ("a_many", "c1", "e5", "food"),
    ]
    t = "2023-06-01T12:00:00Z"  # history: interactions may be at any time
    inter = (
        [("x", "a_old", "view", t), ("x", "a_old", "click", t)]
        + [("x", "a_low", "view", t)] * 4 + [("x", "a_low", "click", t)]
        + [("x", "a_high", "view", t)] * 2 + [("x", "a_high", "click", t)]
        + [("x", "a_noviews", "click", t)] * 3 + [("x", "a_zero", "view", t)] * 5
        + [("x", "b2", "view", t)] * 2 + [("x", "b2", "click", t)]
        + [("x", "b1", "view", t)] * 4 + [("x", "b1", "click", t)] * 2
        + [("x", "a_half", "view", t)] * 2 + [("x", "a_half", "click", t)]
        + [("x", "a_many", "view", t)] + [("x", "a_many", "click", t)] * 3
    )
    locs = [row for i in range(1, 6)
            for row in track(f"u{i}", [(0, 600), (5, 400)], lat=_place(i)[0], lon=LON0)]
    ds = open_frames(dataset(campaigns=campaigns, establishments=ests, ads=ads,
                             interactions=inter, locations=locs), engine)
    assert_equal_data(
        ds.recommendations(),
        _rows(("u1", "e1", "a_high", at(5), 400.0), ("u2", "e2", "a_zero", at(5), 400.0),
              ("u3", "e3", "b1", at(5), 400.0), ("u4", "e4", "a_new", at(5), 400.0),
              ("u5", "e5", "a_many", at(5), 400.0)),
    )


def test_integer_ids_kept_and_tie_by_numeric_id(engine: str) -> None:
    # ads 10 and 9 of establishment 7 both have CTR 1/2 -> smallest ad_id is 9 (numeric).
    t = "2024-05-01T12:00:00Z"
    data = dataset(
        campaigns=[(1, "C", "2024-01-01", "2024-12-31")],
        ads=[(10, 1, 7, "food"), (9, 1, 7, "food")],
        establishments=[(7, "P", "cafe", LAT0, LON0)],
        interactions=[(100, 10, "view", t), (100, 10, "view", t), (100, 10, "click", t),
                      (100, 9, "view", t), (100, 9, "click", t), (100, 9, "view", t)],
        locations=track(5, [(0, 600), (5, 400)]),
    )
    df = collect(open_frames(data, engine).recommendations())
    assert_equal_data(df, _rows((5, 7, 9, at(5), 400.0)))
    for col in ("user_id", "establishment_id", "ad_id"):
        assert df[col].dtype.kind == "i", col


def test_equal_ts_ordered_by_lat_then_lon(engine: str) -> None:
    # Two events of a user at the same instant are taken by lat, then lon:
    #   uS (south of e1): 600 m south has the lower lat -> first; then 400 m -> approach.
    #   uN (north of e1): 400 m north has the lower lat -> first; then 600 m -> moving away.
    #   uW (west, same lat): 600 m west has the lower lon -> first; then 400 m -> approach.
    #   uE (east, same lat): 400 m east first, then 600 m -> moving away.
    # Input rows are listed in the opposite order each time.
    t = iso(at(0))
    north = lambda d: offset(LAT0, LON0, north_m=d)  # noqa: E731
    east = lambda d: offset(LAT0, LON0, east_m=d)  # noqa: E731
    locs = [
        ("uS", *north(-400), t), ("uS", *north(-600), t),
        ("uN", *north(600), t), ("uN", *north(400), t),
        ("uW", *east(-400), t), ("uW", *east(-600), t),
        ("uE", *east(600), t), ("uE", *east(400), t),
    ]
    d_west = float(haversine_m(LAT0, LON0, *east(-400)))
    assert abs(d_west - 400.0) < 1e-3
    assert_equal_data(_run(locs, engine),
                      _rows(("uS", "e1", "a1", at(0), 400.0), ("uW", "e1", "a1", at(0), d_west)))


def test_events_taken_in_ts_order_whatever_the_input_order(engine: str) -> None:
    # Input rows in reverse time order: 400 m at +5 is still the approach after 600 m at 0.
    locs = list(reversed(track("u1", [(0, 600), (5, 400)])))
    assert_equal_data(_run(locs, engine), _rows(("u1", "e1", "a1", at(5), 400.0)))


def test_rows_in_key_order_and_types(engine: str) -> None:
    # output sorted by user_id, ts, establishment_id; ts is a UTC instant.
    locs = track("u2", [(0, 600), (5, 400)]) + track("u1", [(10, 600), (15, 400)])
    df = collect(_run(locs, engine))
    assert list(df.columns) == ["user_id", "establishment_id", "ad_id", "ts", "distance_m"]
    assert df["user_id"].tolist() == ["u1", "u2"]
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert df["ts"].tolist() == [at(15), at(5)]


def test_custom_parameters(engine: str) -> None:
    # radius 1000 m, gap 30 min, closing >= 50 m, cooldown 2 h:
    #   900 m at 0 -> 850 m at 25 (closing 50, gap 25 min) -> suggest
    #   860 m at 40, 800 m at 50 (closing 60) -> suppressed (25 min after the last)
    #   700 m at 140 (gap 90 min) -> not an approach
    #   750 at 160, 600 at 170 (145 min after the suggestion at 25) -> suggest
    locs = track("u1", [(0, 900), (25, 850), (40, 860), (50, 800), (140, 700), (160, 750),
                        (170, 600)])
    ds = open_frames(dataset(locations=locs), engine)
    assert_equal_data(
        ds.recommendations(approach_radius_m=1000, max_gap="30min", min_closing_m=50,
                           cooldown="2h"),
        _rows(("u1", "e1", "a1", at(25), 850.0), ("u1", "e1", "a1", at(170), 600.0)),
    )
    # defaults: none of these events is inside 500 m
    assert_equal_data(ds.recommendations(), _rows())


@pytest.mark.parametrize("bad", [{"approach_radius_m": 0}, {"max_gap": "soon"},
                                 {"min_closing_m": -1}, {"cooldown": "-1h"}])
def test_bad_parameters_rejected(engine: str, bad: dict) -> None:
    ds = open_frames(dataset(locations=track("u1", [(0, 600), (5, 400)])), engine)
    with pytest.raises(ValueError):
        ds.recommendations(**bad)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_cooldown_kernel_equals_the_greedy_scan(data: st.DataObject) -> None:
    """The vectorised cooldown (shared by pandas and Spark) is the plain greedy loop:
    a row is emitted when no emitted row of its group lies less than the cooldown before."""
    lim = np.iinfo(np.int64).min
    groups = data.draw(st.lists(st.lists(st.integers(0, 60), max_size=12), max_size=6))
    t = np.array([x for g in groups for x in sorted(g)], dtype=np.int64)
    starts = np.array([i == 0 for g in groups for i in range(len(g))], dtype=bool)
    cooldown = data.draw(st.integers(0, 20))
    before = None
    if data.draw(st.booleans()):
        before = np.full(len(t), lim, dtype=np.int64)
        for i in np.flatnonzero(starts):
            if data.draw(st.booleans()):
                before[i] = t[i] - data.draw(st.integers(0, 30))
    expected = np.zeros(len(t), dtype=bool)
    last = None
    for i in range(len(t)):
        if starts[i]:
            last = None if before is None or before[i] == lim else int(before[i])
        if last is None or t[i] - last >= cooldown:
            expected[i] = True
            last = int(t[i])
    assert cooldown_mask(starts, t, cooldown, before).tolist() == expected.tolist()
