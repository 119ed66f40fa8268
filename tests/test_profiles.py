"""Questions 5 and 6 - per-user profiles by period of day / weekday and the preferred
category (SPEC §3.5-3.6), hand-worked. America/Recife is UTC-3 (no DST)."""

from __future__ import annotations

import pytest

from adanalytics.semantics import output_columns
from tests.builders import LAT0, LON0, dataset
from tests.helpers import assert_equal_data, collect, offset, open_frames

# --- Question 5: interaction profile ---------------------------------------------------

CATS = ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]
ADS8 = [(f"a_{c}", "c1", "e1", c) for c in CATS]

# local time (Recife) of each interaction, one per category x1..x8:
PERIOD_CASES = [
    ("x1", "2024-01-10T08:59:59Z"),  # 05:59:59 -> night
    ("x2", "2024-01-10T09:00:00Z"),  # 06:00:00 -> morning
    ("x3", "2024-01-10T14:59:59Z"),  # 11:59:59 -> morning
    ("x4", "2024-01-10T15:00:00Z"),  # 12:00:00 -> afternoon
    ("x5", "2024-01-10T20:59:59Z"),  # 17:59:59 -> afternoon
    ("x6", "2024-01-10T21:00:00Z"),  # 18:00:00 -> evening
    ("x7", "2024-01-11T02:59:59Z"),  # 23:59:59 (Jan 10) -> evening
    ("x8", "2024-01-11T03:00:00Z"),  # 00:00:00 (Jan 11) -> night
]


def test_period_boundaries_in_local_time(engine: str) -> None:
    inter = [("u1", f"a_{c}", "view", ts) for c, ts in PERIOD_CASES]
    ds = open_frames(dataset(ads=ADS8, interactions=inter), engine)
    # each period holds two categories, one interaction each -> share 0.5;
    # rows in key order: user, period in day order, category
    assert_equal_data(
        ds.interaction_profile(),
        {"user_id": ["u1"] * 8,
         "period": ["night", "night", "morning", "morning", "afternoon", "afternoon",
                    "evening", "evening"],
         "category": ["x1", "x8", "x2", "x3", "x4", "x5", "x6", "x7"],
         "interactions": [1] * 8, "share": [0.5] * 8},
    )


def test_period_in_custom_tz(engine: str) -> None:
    # Asia/Tokyo (UTC+9): 08:59:59Z -> 17:59:59 afternoon; 09:00Z -> 18:00 evening;
    # 2024-01-10T21:00Z -> 06:00 (Jan 11) morning; 20:59:59Z -> 05:59:59 night.
    inter = [
        ("u1", "a_x1", "view", "2024-01-10T08:59:59Z"),
        ("u1", "a_x2", "click", "2024-01-10T09:00:00Z"),
        ("u1", "a_x3", "view", "2024-01-10T21:00:00Z"),
        ("u1", "a_x4", "view", "2024-01-10T20:59:59Z"),
    ]
    ds = open_frames(dataset(ads=ADS8, interactions=inter), engine, tz="Asia/Tokyo")
    assert_equal_data(
        ds.interaction_profile(),
        {"user_id": ["u1"] * 4, "period": ["night", "morning", "afternoon", "evening"],
         "category": ["x4", "x3", "x1", "x2"], "interactions": [1] * 4, "share": [1.0] * 4},
    )


ADS_TIE = [
    ("a_food", "c1", "e1", "food"),
    ("a_bar", "c1", "e1", "bar"),
    ("a_zoo", "c1", "e1", "zoo"),
    ("a_art", "c1", "e1", "art"),
    ("a_Zoo", "c1", "e1", "Zoo"),
]
MORNING = "2024-01-10T12:00:00Z"  # 09:00 local
EVENING = "2024-01-10T23:00:00Z"  # 20:00 local
NIGHT = "2024-01-10T06:00:00Z"  # 03:00 local
TIE_INTER = (
    # u1 morning: food 2, bar 2, zoo 1 -> tie food/bar -> "bar" (2 of 5 = 0.4)
    [("u1", "a_food", "view", MORNING)] * 2 + [("u1", "a_bar", "click", MORNING)] * 2
    + [("u1", "a_zoo", "view", MORNING)]
    # u1 evening: zoo 3, art 2 -> more interactions beat a smaller name: "zoo" (0.6)
    + [("u1", "a_zoo", "view", EVENING)] * 3 + [("u1", "a_art", "view", EVENING)] * 2
    # u2 night: art 1, Zoo 1 -> tie; code-point order puts "Zoo" before "art"
    + [("u2", "a_art", "view", NIGHT), ("u2", "a_Zoo", "view", NIGHT)]
)


def test_interaction_profile_shares(engine: str) -> None:
    ds = open_frames(dataset(ads=ADS_TIE, interactions=TIE_INTER), engine)
    assert_equal_data(
        ds.interaction_profile(),
        {"user_id": ["u1", "u1", "u1", "u1", "u1", "u2", "u2"],
         "period": ["morning", "morning", "morning", "evening", "evening", "night", "night"],
         "category": ["bar", "food", "zoo", "art", "zoo", "Zoo", "art"],
         "interactions": [2, 2, 1, 2, 3, 1, 1],
         "share": [0.4, 0.4, 0.2, 0.4, 0.6, 0.5, 0.5]},
    )


def test_share_sums_to_one_per_user_and_period(engine: str) -> None:
    df = collect(open_frames(dataset(ads=ADS_TIE, interactions=TIE_INTER), engine)
                 .interaction_profile())
    sums = df.groupby(["user_id", "period"])["share"].sum()
    assert sums.tolist() == pytest.approx([1.0] * len(sums))
    assert len(sums) == 3


def test_preferred_ad_category_ties_to_smallest(engine: str) -> None:
    ds = open_frames(dataset(ads=ADS_TIE, interactions=TIE_INTER), engine)
    assert_equal_data(
        ds.preferred_ad_category(),
        {"user_id": ["u1", "u1", "u2"], "period": ["morning", "evening", "night"],
         "category": ["bar", "zoo", "Zoo"], "interactions": [2, 3, 1], "share": [0.4, 0.6, 0.5]},
    )


def test_profile_counts_views_and_clicks_with_integer_users(engine: str) -> None:
    inter = [(7, "a_food", "view", MORNING), (7, "a_food", "click", MORNING),
             (3, "a_bar", "view", MORNING)]
    df = collect(open_frames(dataset(ads=ADS_TIE, interactions=inter), engine)
                 .preferred_ad_category())
    assert_equal_data(df, {"user_id": [3, 7], "period": ["morning", "morning"],
                           "category": ["bar", "food"], "interactions": [1, 2],
                           "share": [1.0, 1.0]})
    assert df["user_id"].dtype.kind == "i"


@pytest.mark.parametrize("analysis", ["interaction_profile", "preferred_ad_category",
                                      "visit_profile", "preferred_establishment_category"])
def test_empty_and_columns(engine: str, analysis: str) -> None:
    ds = open_frames(dataset(ads=ADS_TIE, interactions=[], locations=[]), engine)
    assert_equal_data(getattr(ds, analysis)(), {c: [] for c in output_columns(analysis)})


# --- Question 6: visit profile ---------------------------------------------------------

ESTS = [
    ("e1", "Cafe", "cafe", LAT0, LON0),
    ("e_bar", "Bar", "bar", *offset(LAT0, LON0, north_m=500.0)),
    ("e_gym", "Gym", "gym", *offset(LAT0, LON0, north_m=1000.0)),
]
AT_CAFE = offset(LAT0, LON0, north_m=10.0)
AT_BAR = offset(LAT0, LON0, north_m=510.0)
AT_GYM = offset(LAT0, LON0, north_m=990.0)
FAR = offset(LAT0, LON0, north_m=250.0)  # 240 m from cafe and bar: not a visit

VISITS = [
    # 2024-01-01 is a Monday.
    # u1 Monday (weekday 0): cafe 2, bar 2 -> tie -> "bar", share 0.5
    ("u1", *AT_CAFE, "2024-01-01T03:00:00Z"),  # Mon 00:00 local
    ("u1", *AT_CAFE, "2024-01-08T12:00:00Z"),  # Mon 09:00 local (next week)
    ("u1", *AT_BAR, "2024-01-01T15:00:00Z"),
    ("u1", *AT_BAR, "2024-01-01T16:00:00Z"),
    # u1 Sunday (weekday 6): cafe 2, gym 1 -> "cafe", share 2/3
    ("u1", *AT_CAFE, "2024-01-01T02:59:59Z"),  # Sun 2023-12-31 23:59:59 local
    ("u1", *AT_CAFE, "2024-01-07T12:00:00Z"),  # Sun 09:00 local
    ("u1", *AT_GYM, "2024-01-07T13:00:00Z"),
    ("u1", *FAR, "2024-01-07T14:00:00Z"),  # no visit
    # u2 Wednesday (weekday 2): gym 1
    ("u2", *AT_GYM, "2024-01-03T12:00:00Z"),
]


def test_visit_profile_weekdays_in_local_time(engine: str) -> None:
    ds = open_frames(dataset(establishments=ESTS, locations=VISITS), engine)
    assert_equal_data(
        ds.visit_profile(),
        {"user_id": ["u1", "u1", "u1", "u1", "u2"], "weekday": [0, 0, 6, 6, 2],
         "category": ["bar", "cafe", "cafe", "gym", "gym"], "visits": [2, 2, 2, 1, 1],
         "share": [0.5, 0.5, 2 / 3, 1 / 3, 1.0]},
    )


def test_preferred_establishment_category(engine: str) -> None:
    ds = open_frames(dataset(establishments=ESTS, locations=VISITS), engine)
    assert_equal_data(
        ds.preferred_establishment_category(),
        {"user_id": ["u1", "u1", "u2"], "weekday": [0, 6, 2], "category": ["bar", "cafe", "gym"],
         "visits": [2, 2, 1], "share": [0.5, 2 / 3, 1.0]},
    )


def test_weekday_in_custom_tz(engine: str) -> None:
    # Asia/Tokyo: 2024-01-01T15:00Z = Tue 00:00 -> 1; 2024-01-01T14:59:59Z = Mon -> 0;
    # 2024-01-01T02:59:59Z = Mon 11:59:59 -> 0.
    locs = [("u1", *AT_CAFE, "2024-01-01T15:00:00Z"), ("u1", *AT_CAFE, "2024-01-01T14:59:59Z"),
            ("u1", *AT_BAR, "2024-01-01T02:59:59Z")]
    ds = open_frames(dataset(establishments=ESTS, locations=locs), engine, tz="Asia/Tokyo")
    assert_equal_data(
        ds.visit_profile(),
        {"user_id": ["u1", "u1", "u1"], "weekday": [0, 0, 1], "category": ["bar", "cafe", "cafe"],
         "visits": [1, 1, 1], "share": [0.5, 0.5, 1.0]},
    )


def test_visit_profile_radius_and_two_establishments(engine: str) -> None:
    # with radius 300 m the FAR point (250 m from cafe, 250 m from bar) is a visit to both
    # (a record near several establishments is a visit to each), and AT_CAFE (10 m) too.
    locs = [("u1", *FAR, "2024-01-03T12:00:00Z"), ("u1", *AT_CAFE, "2024-01-03T13:00:00Z")]
    ds = open_frames(dataset(establishments=ESTS, locations=locs), engine)
    # radius 300: AT_CAFE is 490 m from bar -> cafe only. Wednesday: cafe 2, bar 1.
    assert_equal_data(
        ds.visit_profile(radius_m=300),
        {"user_id": ["u1", "u1"], "weekday": [2, 2], "category": ["bar", "cafe"],
         "visits": [1, 2], "share": [1 / 3, 2 / 3]},
    )
    assert_equal_data(
        ds.preferred_establishment_category(radius_m=300),
        {"user_id": ["u1"], "weekday": [2], "category": ["cafe"], "visits": [2],
         "share": [2 / 3]},
    )
    # default 50 m: only AT_CAFE
    assert_equal_data(
        ds.visit_profile(),
        {"user_id": ["u1"], "weekday": [2], "category": ["cafe"], "visits": [1], "share": [1.0]},
    )


def test_weekday_is_integer(engine: str) -> None:
    df = collect(open_frames(dataset(establishments=ESTS, locations=VISITS), engine)
                 .visit_profile())
    assert list(df.columns) == output_columns("visit_profile")
    assert df["weekday"].dtype.kind == "i"
