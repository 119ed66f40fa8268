"""Dict-literal datasets for the hand-worked tests: rows as tuples, sensible defaults.

``dataset(...)`` returns the dict of column dicts that :func:`helpers.open_frames`
(and ``aa.open_dataset``) accept; every table not given gets a small valid default.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from adanalytics import schema

#: Centre of the hand-worked cases (Recife, where the default tz lives).
LAT0, LON0 = -8.05, -34.90


def table(name: str, rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Columns of ``name`` (contract order) from row tuples."""
    cols = schema.columns(name)
    for r in rows:
        assert len(r) == len(cols), f"{name} row {r} does not match columns {cols}"
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


DEFAULT_ROWS: dict[str, list[tuple[Any, ...]]] = {
    "campaigns": [("c1", "Campaign 1", "2024-01-01", "2024-12-31")],
    "ads": [("a1", "c1", "e1", "food")],
    "establishments": [("e1", "Place 1", "cafe", LAT0, LON0)],
    "interactions": [],
    "locations": [],
}


def dataset(**rows: list[tuple[Any, ...]]) -> dict[str, dict[str, list[Any]]]:
    """A dataset from row tuples per table (defaults for the tables not given)."""
    unknown = set(rows) - set(schema.TABLE_NAMES)
    assert not unknown, f"unknown tables {unknown}"
    return {t: table(t, rows.get(t, DEFAULT_ROWS[t])) for t in schema.TABLE_NAMES}


def utc(text: str) -> pd.Timestamp:
    """An instant from an ISO string (naive = UTC)."""
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def iso(t: pd.Timestamp) -> str:
    """ISO-8601 text of an instant, with offset."""
    return t.isoformat()


def minutes(t0: str, m: float) -> str:
    """``t0`` plus ``m`` minutes, as ISO text."""
    return iso(utc(t0) + pd.Timedelta(minutes=m))


def write_dataset(data: dict[str, dict[str, list[Any]]], root: Any, fmt: str = "csv") -> Any:
    """Write a dict-literal dataset under ``root`` as ``csv``, ``csv.gz``, ``parquet``
    (files) or ``parquetdir`` (a directory of two part files per table)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, cols in data.items():
        df = pd.DataFrame(cols)
        if fmt == "csv":
            df.to_csv(root / f"{name}.csv", index=False)
        elif fmt == "csv.gz":
            df.to_csv(root / f"{name}.csv.gz", index=False, compression="gzip")
        elif fmt == "parquet":
            df.to_parquet(root / f"{name}.parquet", index=False)
        elif fmt == "parquetdir":
            d = root / name
            d.mkdir()
            half = len(df) // 2
            df.iloc[:half].to_parquet(d / "part-0.parquet", index=False)
            df.iloc[half:].to_parquet(d / "part-1.parquet", index=False)
        else:
            raise ValueError(fmt)
    return root


def sample_dataset(int_ids: bool = False) -> dict[str, dict[str, list[Any]]]:
    """A small dataset on which every analysis has rows (visits, attributed visits,
    suggestions, both months); ids are integers with ``int_ids``."""
    from tests.helpers import offset

    def i(text: str) -> Any:
        return int(text[1:]) + (100 if text[0] == "e" else 0) if int_ids else text

    e2 = offset(LAT0, LON0, north_m=1000.0)
    t0 = "2024-05-31T23:00:00Z"  # 20:00 local on May 31; +4 h is June 1 local
    return dataset(
        campaigns=[(i("c1"), "One", "2024-01-01", "2024-12-31"),
                   (i("c2"), "Two", "2024-05-01", "2024-05-09")],
        establishments=[(i("e1"), "Cafe", "cafe", LAT0, LON0), (i("e2"), "Bar", "bar", *e2)],
        ads=[(i("a1"), i("c1"), i("e1"), "food"), (i("a2"), i("c2"), i("e2"), "drinks"),
             (i("a3"), i("c1"), i("e2"), "drinks")],
        interactions=[(i("u1"), i("a1"), "view", t0), (i("u1"), i("a1"), "click", minutes(t0, 1)),
                      (i("u2"), i("a2"), "view", minutes(t0, -60)),
                      (i("u2"), i("a3"), "view", minutes(t0, 2)),
                      (i("u2"), i("a3"), "click", minutes(t0, 300))],
        locations=[(i("u1"), *offset(LAT0, LON0, north_m=-600.0), minutes(t0, 10)),
                   (i("u1"), *offset(LAT0, LON0, north_m=10.0), minutes(t0, 15)),
                   (i("u1"), *offset(LAT0, LON0, north_m=5.0), minutes(t0, 240)),
                   (i("u2"), *offset(*e2, north_m=-450.0), minutes(t0, 20)),
                   (i("u2"), *offset(*e2, north_m=20.0), minutes(t0, 30))],
    )
