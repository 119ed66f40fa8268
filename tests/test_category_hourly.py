"""Question 4 - interactions per ad category and local hour (SPEC §3.4), hand-worked."""

from __future__ import annotations

import pytest

from adanalytics.semantics import output_columns
from tests.builders import dataset
from tests.helpers import assert_equal_data, collect, open_frames

ADS = [
    ("a1", "c1", "e1", "food"),
    ("a2", "c1", "e1", "fashion"),
    ("a3", "c1", "e1", "tech"),  # no interaction at all: still 24 zero rows
    ("a4", "c1", "e1", "food"),  # a second ad of the same category
]


def _grid(categories: list[str], months: list[str] | None,
          counts: dict[tuple, tuple[int, int]]) -> dict[str, list]:
    """Expected complete grid; ``counts[(category, [month,] hour)] = (views, clicks)``."""
    out: dict[str, list] = {"category": []}
    if months is not None:
        out["month"] = []
    out.update({"hour": [], "interactions": [], "views": [], "clicks": []})
    for cat in categories:
        for month in months if months is not None else [None]:
            for hour in range(24):
                key = (cat, hour) if month is None else (cat, month, hour)
                v, c = counts.get(key, (0, 0))
                out["category"].append(cat)
                if month is not None:
                    out["month"].append(month)
                out["hour"].append(hour)
                out["interactions"].append(v + c)
                out["views"].append(v)
                out["clicks"].append(c)
    return out


INTER = [
    # 2024-01-10T02:30Z = 2024-01-09 23:30 local (Recife, UTC-3) -> hour 23
    ("u1", "a1", "view", "2024-01-10T02:30:00Z"),
    # 2024-01-10T12:00Z = 09:00 local -> hour 9 (a1 and a4 are both "food")
    ("u1", "a1", "click", "2024-01-10T12:00:00Z"),
    ("u2", "a4", "view", "2024-01-10T12:59:59Z"),
    # 2024-03-05T03:00Z = 00:00 local -> hour 0
    ("u2", "a2", "view", "2024-03-05T03:00:00Z"),
    ("u2", "a2", "click", "2024-03-05T03:10:00Z"),
]


def test_complete_grid_by_total(engine: str) -> None:
    ds = open_frames(dataset(ads=ADS, interactions=INTER), engine)
    # categories sorted: fashion, food, tech; 3 x 24 = 72 rows
    expected = _grid(
        ["fashion", "food", "tech"], None,
        {("fashion", 0): (1, 1), ("food", 23): (1, 0), ("food", 9): (1, 1)},
    )
    assert len(expected["hour"]) == 72
    assert_equal_data(ds.category_hourly(), expected)


def test_complete_grid_by_month(engine: str) -> None:
    # months with >= 1 interaction (local time): 2024-01 and 2024-03 (not 2024-02)
    ds = open_frames(dataset(ads=ADS, interactions=INTER), engine)
    expected = _grid(
        ["fashion", "food", "tech"], ["2024-01", "2024-03"],
        {("fashion", "2024-03", 0): (1, 1), ("food", "2024-01", 23): (1, 0),
         ("food", "2024-01", 9): (1, 1)},
    )
    assert len(expected["hour"]) == 3 * 2 * 24
    assert_equal_data(ds.category_hourly(by="month"), expected)


def test_month_and_hour_follow_local_time_at_month_start(engine: str) -> None:
    # 2024-02-01T02:30Z is 2024-01-31 23:30 in Recife: month 2024-01, hour 23 - and
    # there is no 2024-02 block at all.
    inter = [("u1", "a1", "view", "2024-02-01T02:30:00Z")]
    ds = open_frames(dataset(ads=ADS, interactions=inter), engine)
    expected = _grid(["fashion", "food", "tech"], ["2024-01"], {("food", "2024-01", 23): (1, 0)})
    assert_equal_data(ds.category_hourly(by="month"), expected)


def test_custom_tz_shifts_hours(engine: str) -> None:
    # Asia/Tokyo (UTC+9): 02:30Z -> 11:30 local; 12:00Z -> 21:00; 12:59:59Z -> 21:59:59;
    # 2024-03-05T03:00Z -> 12:00 and 03:10Z -> 12:10.
    ds = open_frames(dataset(ads=ADS, interactions=INTER), engine, tz="Asia/Tokyo")
    expected = _grid(
        ["fashion", "food", "tech"], None,
        {("fashion", 12): (1, 1), ("food", 11): (1, 0), ("food", 21): (1, 1)},
    )
    assert_equal_data(ds.category_hourly(), expected)


def test_no_interactions(engine: str) -> None:
    ds = open_frames(dataset(ads=ADS, interactions=[]), engine)
    # total: the zero grid of every ad category; by month: no month has interactions
    assert_equal_data(ds.category_hourly(), _grid(["fashion", "food", "tech"], None, {}))
    assert_equal_data(ds.category_hourly(by="month"),
                      {c: [] for c in output_columns("category_hourly", "month")})


@pytest.mark.parametrize("by", ["total", "month"])
def test_output_columns_and_types(engine: str, by: str) -> None:
    df = collect(open_frames(dataset(ads=ADS, interactions=INTER), engine).category_hourly(by=by))
    month = ["month"] if by == "month" else []
    assert list(df.columns) == ["category", *month, "hour", "interactions", "views", "clicks"]
    assert list(df.columns) == output_columns("category_hourly", by)
    for col in ("hour", "interactions", "views", "clicks"):
        assert df[col].dtype.kind == "i", col
