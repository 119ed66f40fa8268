"""Question 2 - visits (SPEC §3.2), hand-worked on every boundary.

Distances are made with ``helpers.offset`` (exact along a meridian): a point 49.5 m
north of an establishment is 49.5 m from it (to ~1e-9 m).
"""

from __future__ import annotations

import pytest

from adanalytics.semantics import output_columns
from tests.builders import LAT0, LON0, dataset
from tests.helpers import assert_equal_data, offset, open_frames

E1 = ("e1", "Place 1", "cafe", LAT0, LON0)


def _near(d_north: float) -> tuple[float, float]:
    return offset(LAT0, LON0, north_m=d_north)


def test_strictly_closer_than_50m(engine: str) -> None:
    # u1 at 0 m and 49.5 m -> 2 visits; u2 at 50.5 m -> none; u3 at 49.9 m -> 1 visit.
    rows = [
        ("u1", *_near(0.0), "2024-01-10T12:00:00Z"),
        ("u1", *_near(49.5), "2024-01-10T12:05:00Z"),
        ("u2", *_near(50.5), "2024-01-10T12:00:00Z"),
        ("u3", *_near(-49.9), "2024-01-10T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    # visits = 3 records (u1 x2, u3 x1); visitors = {u1, u3} = 2
    assert_equal_data(ds.visits(), {"establishment_id": ["e1"], "visits": [3], "visitors": [2]})


def test_default_radius_is_50m(engine: str) -> None:
    rows = [("u1", *_near(49.5), "2024-01-10T12:00:00Z"), ("u2", *_near(50.5), "2024-01-10T12:00:00Z")]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    assert_equal_data(ds.visits(radius_m=50), {"establishment_id": ["e1"], "visits": [1], "visitors": [1]})
    assert_equal_data(ds.visits(), {"establishment_id": ["e1"], "visits": [1], "visitors": [1]})


def test_custom_radius(engine: str) -> None:
    # radius 100 m: 49.5 m, 50.5 m and 99.5 m are in, 100.5 m is out.
    rows = [
        ("u1", *_near(49.5), "2024-01-10T12:00:00Z"),
        ("u2", *_near(50.5), "2024-01-10T12:00:00Z"),
        ("u3", *_near(99.5), "2024-01-10T12:00:00Z"),
        ("u4", *_near(-100.5), "2024-01-10T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    assert_equal_data(ds.visits(radius_m=100), {"establishment_id": ["e1"], "visits": [3], "visitors": [3]})
    # radius 20 m: nobody -> no row at all
    assert_equal_data(ds.visits(radius_m=20), {"establishment_id": [], "visits": [], "visitors": []})


def test_record_near_two_establishments_counts_for_both(engine: str) -> None:
    # e1 at P, e2 60 m north of P. A record 30 m north is 30 m from both -> a visit to each.
    # A record 10 m south of P is 10 m from e1 and 70 m from e2 -> e1 only.
    e2 = ("e2", "Place 2", "bar", *_near(60.0))
    rows = [
        ("u1", *_near(30.0), "2024-01-10T12:00:00Z"),
        ("u2", *_near(-10.0), "2024-01-10T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1, e2], locations=rows), engine)
    assert_equal_data(
        ds.visits(),
        {"establishment_id": ["e1", "e2"], "visits": [2, 1], "visitors": [2, 1]},
    )


def test_visitors_are_distinct_users(engine: str) -> None:
    # u1: 3 records inside, u2: 1 record inside, u3: only outside.
    rows = [
        ("u1", *_near(1.0), "2024-01-10T12:00:00Z"),
        ("u1", *_near(2.0), "2024-01-10T12:01:00Z"),
        ("u1", *_near(3.0), "2024-01-11T12:00:00Z"),
        ("u2", *_near(4.0), "2024-01-10T12:00:00Z"),
        ("u3", *_near(80.0), "2024-01-10T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    assert_equal_data(ds.visits(), {"establishment_id": ["e1"], "visits": [4], "visitors": [2]})


def test_by_month_in_local_time(engine: str) -> None:
    # America/Recife is UTC-3 all year (no DST since 2019).
    # 2024-02-01T02:30Z = 2024-01-31 23:30 local -> "2024-01"
    # 2024-02-01T03:00Z = 2024-02-01 00:00 local -> "2024-02"
    # 2024-01-15T12:00Z -> "2024-01"; u2 in 2024-01 too (2 visitors in Jan, 1 in Feb).
    rows = [
        ("u1", *_near(1.0), "2024-02-01T02:30:00Z"),
        ("u1", *_near(1.0), "2024-02-01T03:00:00Z"),
        ("u2", *_near(1.0), "2024-01-15T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    assert_equal_data(
        ds.visits(by="month"),
        {"establishment_id": ["e1", "e1"], "month": ["2024-01", "2024-02"],
         "visits": [2, 1], "visitors": [2, 1]},
    )
    # by total: no month column; 3 visits, 2 visitors
    assert_equal_data(ds.visits(by="total"), {"establishment_id": ["e1"], "visits": [3], "visitors": [2]})


def test_by_month_in_custom_tz(engine: str) -> None:
    # Asia/Tokyo is UTC+9: 2024-01-31T15:00Z = 2024-02-01 00:00 local -> "2024-02";
    # 2024-01-31T14:59:59Z = 2024-01-31 23:59:59 local -> "2024-01".
    # In America/Recife both are January.
    rows = [
        ("u1", *_near(1.0), "2024-01-31T15:00:00Z"),
        ("u2", *_near(1.0), "2024-01-31T14:59:59Z"),
    ]
    data = dataset(establishments=[E1], locations=rows)
    tokyo = open_frames(data, engine, tz="Asia/Tokyo")
    assert_equal_data(
        tokyo.visits(by="month"),
        {"establishment_id": ["e1", "e1"], "month": ["2024-01", "2024-02"],
         "visits": [1, 1], "visitors": [1, 1]},
    )
    recife = open_frames(data, engine)
    assert_equal_data(
        recife.visits(by="month"),
        {"establishment_id": ["e1"], "month": ["2024-01"], "visits": [2], "visitors": [2]},
    )


def test_visits_per_user_across_months_counts_visitor_in_each(engine: str) -> None:
    # u1 visits in Jan and Mar -> visitor in both months; total visitors = 1.
    rows = [
        ("u1", *_near(1.0), "2024-01-10T12:00:00Z"),
        ("u1", *_near(1.0), "2024-03-10T12:00:00Z"),
    ]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    assert_equal_data(
        ds.visits(by="month"),
        {"establishment_id": ["e1", "e1"], "month": ["2024-01", "2024-03"],
         "visits": [1, 1], "visitors": [1, 1]},
    )
    assert_equal_data(ds.visits(), {"establishment_id": ["e1"], "visits": [2], "visitors": [1]})


@pytest.mark.parametrize("by", ["total", "month"])
def test_output_columns_exact(engine: str, by: str) -> None:
    rows = [("u1", *_near(1.0), "2024-01-10T12:00:00Z")]
    ds = open_frames(dataset(establishments=[E1], locations=rows), engine)
    from tests.helpers import collect

    df = collect(ds.visits(by=by))
    assert list(df.columns) == output_columns("visits", by)
    assert ("month" in df.columns) == (by == "month")


def test_establishments_without_visits_have_no_row(engine: str) -> None:
    # Decision (spec silent): like ctr, a key with nothing to count has no row.
    e2 = ("e2", "Far", "bar", *_near(5000.0))
    rows = [("u1", *_near(1.0), "2024-01-10T12:00:00Z")]
    ds = open_frames(dataset(establishments=[E1, e2], locations=rows), engine)
    assert_equal_data(ds.visits(), {"establishment_id": ["e1"], "visits": [1], "visitors": [1]})


def test_integer_ids_stay_integers(engine: str) -> None:
    est = [(7, "Place 7", "cafe", LAT0, LON0), (3, "Place 3", "bar", *_near(30.0))]
    rows = [(101, *_near(10.0), "2024-01-10T12:00:00Z"), (102, *_near(40.0), "2024-01-10T12:00:00Z")]
    data = dataset(
        campaigns=[(1, "C", "2024-01-01", "2024-12-31")],
        ads=[(11, 1, 7, "food")],
        establishments=est,
        locations=rows,
    )
    ds = open_frames(data, engine)
    # u101 at 10 m: e7 (10 m) and e3 (20 m); u102 at 40 m: e7 (40 m) and e3 (10 m).
    df = ds.visits()
    assert_equal_data(df, {"establishment_id": [3, 7], "visits": [2, 2], "visitors": [2, 2]})
    from tests.helpers import collect

    assert all(type(v) is int for v in collect(df)["establishment_id"].tolist())
    assert collect(df)["establishment_id"].dtype.kind == "i"


def test_no_locations(engine: str) -> None:
    ds = open_frames(dataset(establishments=[E1], locations=[]), engine)
    assert_equal_data(ds.visits(by="month"),
                      {"establishment_id": [], "month": [], "visits": [], "visitors": []})
