"""Question 1 - campaign CTR and its Wilson 95 % interval (SPEC §3.1), hand-worked."""

from __future__ import annotations

import math

import pytest

from adanalytics.semantics import output_columns
from tests.builders import dataset
from tests.helpers import assert_equal_data, collect, open_frames

Z = 1.959963984540054


def wilson_by_hand(clicks: int, views: int) -> tuple[float, float]:
    """Wilson score interval in the counts form (c + z²/2 ± z√(c(n−c)/n + z²/4)) / (n + z²),
    with c clamped to n (p clamped to 1) - an algebraically equal, separately written form."""
    c, n = min(clicks, views), views
    centre = c + Z * Z / 2
    half = Z * math.sqrt(c * (n - c) / n + Z * Z / 4)
    return (centre - half) / (n + Z * Z), (centre + half) / (n + Z * Z)


def _views(user: str, ad: str, n: int, ts: str = "2024-01-10T12:00:00Z") -> list[tuple]:
    return [(user, ad, "view", ts)] * n


def _clicks(user: str, ad: str, n: int, ts: str = "2024-01-10T12:00:00Z") -> list[tuple]:
    return [(user, ad, "click", ts)] * n


ADS = [
    ("a1", "c1", "e1", "food"),
    ("a2", "c1", "e1", "food"),
    ("a3", "c2", "e1", "food"),
    ("a4", "c3", "e1", "food"),
    ("a5", "c4", "e1", "food"),
]
CAMPAIGNS = [(f"c{i}", f"C{i}", "2024-01-01", "2024-12-31") for i in range(1, 6)]


def test_assignment_example_185_of_10000(engine: str) -> None:
    # Campaign A: one ad, 10,000 views and 185 clicks -> CTR = 185 / 10,000 = 0.0185.
    # Wilson (z = 1.959963984540054, n = 10000, c = 185):
    #   (185 + 1.92072 ∓ 1.95996·√(185·9815/10000 + 0.96036)) / (10000 + 3.84146)
    #   = [0.0160378718578466, 0.0213319185731149]
    inter = _views("u1", "a1", 10_000) + _clicks("u2", "a1", 185)
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter), engine)
    low, high = wilson_by_hand(185, 10_000)
    assert math.isclose(low, 0.0160378718578466, rel_tol=1e-12)
    assert math.isclose(high, 0.0213319185731149, rel_tol=1e-12)
    assert_equal_data(
        ds.ctr(),
        {"campaign_id": ["c1"], "views": [10_000], "clicks": [185], "ctr": [0.0185],
         "ctr_low": [low], "ctr_high": [high]},
        rel=1e-12,
    )


def test_views_clicks_null_ctr_and_missing_campaigns(engine: str) -> None:
    # c1: a1 3 views + 1 click, a2 1 view + 1 click -> 4 views, 2 clicks, ctr 0.5
    # c2: a3 only 2 clicks -> views 0: ctr, ctr_low, ctr_high null
    # c3: a4 2 views, 0 clicks -> ctr 0.0, low 0.0
    # c4: a5 no interaction -> no row; c5 has no ads -> no row
    inter = (
        _views("u1", "a1", 3) + _clicks("u1", "a1", 1) + _views("u2", "a2", 1)
        + _clicks("u2", "a2", 1) + _clicks("u3", "a3", 2) + _views("u3", "a4", 2)
    )
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter), engine)
    l1, h1 = wilson_by_hand(2, 4)
    l3, h3 = wilson_by_hand(0, 2)
    assert l3 == 0.0
    assert_equal_data(
        ds.ctr(),
        {"campaign_id": ["c1", "c2", "c3"], "views": [4, 0, 2], "clicks": [2, 2, 0],
         "ctr": [0.5, None, 0.0], "ctr_low": [l1, None, l3], "ctr_high": [h1, None, h3]},
    )


def test_clicks_above_views_clamps_p_to_one(engine: str) -> None:
    # 1 view, 2 clicks: ctr = 2 / 1 = 2.0 (raw ratio); Wilson with p clamped to 1:
    #   low = 1 / (1 + z²) = 0.2065493143772..., high = (1 + z²) / (1 + z²) = 1
    inter = _views("u1", "a1", 1) + _clicks("u1", "a1", 2)
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter), engine)
    assert_equal_data(
        ds.ctr(),
        {"campaign_id": ["c1"], "views": [1], "clicks": [2], "ctr": [2.0],
         "ctr_low": [1 / (1 + Z * Z)], "ctr_high": [1.0]},
    )


def test_wilson_ranks_one_view_below_many(engine: str) -> None:
    # c1: 1 view 1 click (ctr 1.0, low 0.2065); c2: 1000 views 500 clicks (ctr 0.5,
    # low ~0.469): by ctr c1 is "best", by ctr_low c2 is.
    inter = (_views("u1", "a1", 1) + _clicks("u1", "a1", 1)
             + _views("u2", "a3", 1000) + _clicks("u2", "a3", 500))
    df = collect(open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter),
                             engine).ctr())
    low = dict(zip(df["campaign_id"], df["ctr_low"], strict=True))
    assert low["c2"] > low["c1"]
    assert math.isclose(low["c2"], wilson_by_hand(500, 1000)[0], rel_tol=1e-12)


def test_by_month_in_local_time(engine: str) -> None:
    # 2024-02-01T02:30Z = 2024-01-31 23:30 in America/Recife -> "2024-01"
    # 2024-02-01T03:00Z = 2024-02-01 00:00 local -> "2024-02"
    inter = [
        ("u1", "a1", "view", "2024-02-01T02:30:00Z"),
        ("u1", "a1", "click", "2024-02-01T02:31:00Z"),
        ("u1", "a1", "view", "2024-02-01T03:00:00Z"),
        ("u1", "a1", "view", "2024-02-10T03:00:00Z"),
        ("u1", "a3", "click", "2024-02-10T03:00:00Z"),  # c2 only in Feb, only clicks
    ]
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter), engine)
    l_jan, h_jan = wilson_by_hand(1, 1)
    l_feb, h_feb = wilson_by_hand(0, 2)
    assert_equal_data(
        ds.ctr(by="month"),
        {"campaign_id": ["c1", "c1", "c2"], "month": ["2024-01", "2024-02", "2024-02"],
         "views": [1, 2, 0], "clicks": [1, 0, 1], "ctr": [1.0, 0.0, None],
         "ctr_low": [l_jan, l_feb, None], "ctr_high": [h_jan, h_feb, None]},
    )
    # whole period: c1 3 views 1 click
    l_tot, h_tot = wilson_by_hand(1, 3)
    assert_equal_data(
        ds.ctr(by="total"),
        {"campaign_id": ["c1", "c2"], "views": [3, 0], "clicks": [1, 1], "ctr": [1 / 3, None],
         "ctr_low": [l_tot, None], "ctr_high": [h_tot, None]},
    )


def test_by_month_in_custom_tz(engine: str) -> None:
    # Asia/Tokyo (UTC+9): 2024-01-31T15:00Z = 2024-02-01 00:00 local -> "2024-02"
    inter = [("u1", "a1", "view", "2024-01-31T15:00:00Z"),
             ("u1", "a1", "click", "2024-01-31T14:59:59Z")]
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=inter), engine,
                     tz="Asia/Tokyo")
    df = collect(ds.ctr(by="month"))
    assert df["month"].tolist() == ["2024-01", "2024-02"]
    assert df["views"].tolist() == [0, 1]
    assert df["clicks"].tolist() == [1, 0]


@pytest.mark.parametrize("by", ["total", "month"])
def test_output_columns_exact(engine: str, by: str) -> None:
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=_views("u", "a1", 1)),
                     engine)
    df = collect(ds.ctr(by=by))
    assert list(df.columns) == output_columns("ctr", by)
    month = ["month"] if by == "month" else []
    assert list(df.columns) == ["campaign_id", *month, "views", "clicks", "ctr", "ctr_low",
                                "ctr_high"]


def test_no_interactions_no_rows(engine: str) -> None:
    ds = open_frames(dataset(campaigns=CAMPAIGNS, ads=ADS, interactions=[]), engine)
    assert_equal_data(ds.ctr(), {c: [] for c in output_columns("ctr", "total")})


def test_integer_campaign_ids(engine: str) -> None:
    data = dataset(
        campaigns=[(2, "B", "2024-01-01", "2024-12-31"), (10, "J", "2024-01-01", "2024-12-31")],
        ads=[(1, 10, 1, "food"), (2, 2, 1, "food")],
        establishments=[(1, "P", "cafe", -8.05, -34.9)],
        interactions=[(7, 1, "view", "2024-01-10T12:00:00Z"), (7, 2, "click", "2024-01-10T12:00:00Z")],
    )
    df = collect(open_frames(data, engine).ctr())
    # numeric order of integer ids: 2 before 10
    assert df["campaign_id"].tolist() == [2, 10]
    assert df["campaign_id"].dtype.kind == "i"
    assert df["views"].tolist() == [0, 1]
