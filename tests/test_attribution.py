"""Question 3 - interaction -> visit attribution (SPEC §3.3), hand-worked.

A visit of user u to e at t is attributed when u interacted with an ad of e at ti with
0 <= t - ti <= window (6 h by default, both ends inclusive).
"""

from __future__ import annotations

import pandas as pd
import pytest

from adanalytics.semantics import output_columns
from tests.builders import LAT0, LON0, dataset, iso, utc
from tests.helpers import assert_equal_data, collect, offset, open_frames

E1 = ("e1", "Place 1", "cafe", LAT0, LON0)
E2 = ("e2", "Place 2", "bar", *offset(LAT0, LON0, north_m=1000.0))
ADS = [("a1", "c1", "e1", "food"), ("a2", "c1", "e2", "drinks")]
T = "2024-01-10T12:00:00Z"  # every visit below happens at T (09:00 local)


def _at(delta: pd.Timedelta) -> str:
    """The instant ``T - delta`` (delta = how long before the visit)."""
    return iso(utc(T) - delta)


def _visit(user: str) -> tuple:
    return (user, *offset(LAT0, LON0, north_m=5.0), T)


H6 = pd.Timedelta(hours=6)
S1 = pd.Timedelta(seconds=1)


def test_window_inclusive_at_both_ends(engine: str) -> None:
    # One visit to e1 per user, at T; each user's only interaction is:
    #   u_0     a1 at T          (t - ti = 0)          -> attributed
    #   u_6h    a1 at T - 6h     (t - ti = 6h)         -> attributed
    #   u_6h1s  a1 at T - 6h 1s  (6h + 1s)             -> not
    #   u_after a1 at T + 1s     (interaction after)   -> not
    #   u_other a2 at T - 1h     (ad of e2, not e1)    -> not
    #   u_none  no interaction                         -> not
    #   u_click a1 click at T - 3h (a click counts)    -> attributed
    inter = [
        ("u_0", "a1", "view", _at(pd.Timedelta(0))),
        ("u_6h", "a1", "view", _at(H6)),
        ("u_6h1s", "a1", "view", _at(H6 + S1)),
        ("u_after", "a1", "view", _at(-S1)),
        ("u_other", "a2", "view", _at(pd.Timedelta(hours=1))),
        ("u_click", "a1", "click", _at(pd.Timedelta(hours=3))),
    ]
    users = ["u_0", "u_6h", "u_6h1s", "u_after", "u_other", "u_none", "u_click"]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=[_visit(u) for u in users]), engine)
    # visits = 7, attributed = {u_0, u_6h, u_click} = 3, ratio = 3/7
    assert_equal_data(
        ds.attribution(),
        {"establishment_id": ["e1"], "visits": [7], "attributed_visits": [3], "ratio": [3 / 7]},
    )


def test_interaction_of_another_user_is_not_attributed(engine: str) -> None:
    # u1 interacts with a1 1 h before u2 visits e1; u2 never interacts -> 0 of 1.
    inter = [("u1", "a1", "view", _at(pd.Timedelta(hours=1)))]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=[_visit("u2")]), engine)
    assert_equal_data(
        ds.attribution(),
        {"establishment_id": ["e1"], "visits": [1], "attributed_visits": [0], "ratio": [0.0]},
    )


def test_each_visit_judged_on_its_own(engine: str) -> None:
    # u1 views a1 at T - 7h; visits at T - 2h (5 h after: attributed), at T (7 h: not) and
    # at T + 1h (8 h: not). u2 clicks a1 at T - 30 min and visits at T and T + 1 min (both
    # attributed: one interaction attributes every visit within its window).
    near = offset(LAT0, LON0, north_m=5.0)
    inter = [
        ("u1", "a1", "view", _at(pd.Timedelta(hours=7))),
        ("u2", "a1", "click", _at(pd.Timedelta(minutes=30))),
    ]
    locs = [
        ("u1", *near, _at(pd.Timedelta(hours=2))),
        ("u1", *near, T),
        ("u1", *near, _at(pd.Timedelta(hours=-1))),
        ("u2", *near, T),
        ("u2", *near, _at(pd.Timedelta(minutes=-1))),
    ]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=locs), engine)
    # visits 5; attributed: u1 @T-2h, u2 @T, u2 @T+1min = 3
    assert_equal_data(
        ds.attribution(),
        {"establishment_id": ["e1"], "visits": [5], "attributed_visits": [3], "ratio": [3 / 5]},
    )


def test_custom_window(engine: str) -> None:
    # window 1 h: interaction 1 h before -> attributed, 1 h + 1 s -> not,
    # 3 h before (attributed with the default 6 h) -> not.
    inter = [
        ("u1", "a1", "view", _at(pd.Timedelta(hours=1))),
        ("u2", "a1", "view", _at(pd.Timedelta(hours=1) + S1)),
        ("u3", "a1", "view", _at(pd.Timedelta(hours=3))),
    ]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=[_visit(u) for u in ("u1", "u2", "u3")]), engine)
    assert_equal_data(
        ds.attribution(window="1h"),
        {"establishment_id": ["e1"], "visits": [3], "attributed_visits": [1], "ratio": [1 / 3]},
    )
    assert_equal_data(
        ds.attribution(window=pd.Timedelta(hours=1)),
        {"establishment_id": ["e1"], "visits": [3], "attributed_visits": [1], "ratio": [1 / 3]},
    )
    # default 6 h: all three
    assert_equal_data(
        ds.attribution(),
        {"establishment_id": ["e1"], "visits": [3], "attributed_visits": [3], "ratio": [1.0]},
    )


def test_visit_to_two_establishments_attributed_per_establishment(engine: str) -> None:
    # e3 is 40 m north of e1; a visit 20 m north is a visit to both. u1 viewed the ad of
    # e1 (a1) 1 h before -> attributed for e1 only.
    e3 = ("e3", "Place 3", "gym", *offset(LAT0, LON0, north_m=40.0))
    ads = [*ADS, ("a3", "c1", "e3", "sport")]
    inter = [("u1", "a1", "view", _at(pd.Timedelta(hours=1)))]
    locs = [("u1", *offset(LAT0, LON0, north_m=20.0), T)]
    ds = open_frames(dataset(establishments=[E1, E2, e3], ads=ads, interactions=inter,
                             locations=locs), engine)
    assert_equal_data(
        ds.attribution(),
        {"establishment_id": ["e1", "e3"], "visits": [1, 1], "attributed_visits": [1, 0],
         "ratio": [1.0, 0.0]},
    )


def test_month_is_month_of_the_visit(engine: str) -> None:
    # Interaction 2024-02-01T01:00Z (= Jan 31 22:00 local), visit 2024-02-01T04:00Z
    # (= Feb 1 01:00 local, 3 h later): the attributed visit belongs to 2024-02.
    # A second visit 2024-02-01T02:30Z (= Jan 31 23:30 local, 1.5 h later) -> 2024-01.
    near = offset(LAT0, LON0, north_m=5.0)
    inter = [("u1", "a1", "view", "2024-02-01T01:00:00Z")]
    locs = [("u1", *near, "2024-02-01T04:00:00Z"), ("u1", *near, "2024-02-01T02:30:00Z")]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=locs), engine)
    assert_equal_data(
        ds.attribution(by="month"),
        {"establishment_id": ["e1", "e1"], "month": ["2024-01", "2024-02"], "visits": [1, 1],
         "attributed_visits": [1, 1], "ratio": [1.0, 1.0]},
    )


def test_ratio_per_month(engine: str) -> None:
    # Jan: 2 visits, 1 attributed (0.5). Mar: 1 visit, 0 attributed (0.0).
    near = offset(LAT0, LON0, north_m=5.0)
    inter = [("u1", "a1", "view", "2024-01-10T10:00:00Z")]
    locs = [
        ("u1", *near, "2024-01-10T12:00:00Z"),  # 2 h after -> attributed
        ("u1", *near, "2024-01-20T12:00:00Z"),  # 10 days after -> not
        ("u1", *near, "2024-03-10T12:00:00Z"),  # not
    ]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=locs), engine)
    assert_equal_data(
        ds.attribution(by="month"),
        {"establishment_id": ["e1", "e1"], "month": ["2024-01", "2024-03"], "visits": [2, 1],
         "attributed_visits": [1, 0], "ratio": [0.5, 0.0]},
    )
    assert_equal_data(
        ds.attribution(by="total"),
        {"establishment_id": ["e1"], "visits": [3], "attributed_visits": [1], "ratio": [1 / 3]},
    )


def test_custom_radius(engine: str) -> None:
    # visit at 70 m: only with radius 100 m.
    inter = [("u1", "a1", "view", _at(pd.Timedelta(hours=1)))]
    locs = [("u1", *offset(LAT0, LON0, north_m=70.0), T)]
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, interactions=inter,
                             locations=locs), engine)
    assert_equal_data(ds.attribution(),
                      {"establishment_id": [], "visits": [], "attributed_visits": [], "ratio": []})
    assert_equal_data(
        ds.attribution(radius_m=100),
        {"establishment_id": ["e1"], "visits": [1], "attributed_visits": [1], "ratio": [1.0]},
    )


@pytest.mark.parametrize("by", ["total", "month"])
def test_output_columns_exact(engine: str, by: str) -> None:
    ds = open_frames(dataset(establishments=[E1, E2], ads=ADS, locations=[_visit("u1")]), engine)
    assert list(collect(ds.attribution(by=by)).columns) == output_columns("attribution", by)


def test_integer_ids(engine: str) -> None:
    data = dataset(
        campaigns=[(1, "C", "2024-01-01", "2024-12-31")],
        ads=[(10, 1, 5, "food")],
        establishments=[(5, "P", "cafe", LAT0, LON0)],
        interactions=[(42, 10, "view", _at(pd.Timedelta(hours=1)))],
        locations=[(42, *offset(LAT0, LON0, north_m=5.0), T)],
    )
    df = collect(open_frames(data, engine).attribution())
    assert_equal_data(df, {"establishment_id": [5], "visits": [1], "attributed_visits": [1],
                           "ratio": [1.0]})
    assert df["establishment_id"].dtype.kind == "i"
