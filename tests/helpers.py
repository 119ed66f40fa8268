"""Test helpers: build datasets from dict literals, compare results with expectations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

import adanalytics as aa
from adanalytics.semantics import EARTH_RADIUS_M


def open_frames(data: dict[str, Any], engine: str, **kwargs: Any) -> aa.Dataset:
    """A Dataset on ``engine`` from in-memory tables (dicts of columns)."""
    return aa.open_dataset(data, engine=engine, **kwargs)


def collect(frame: Any) -> pd.DataFrame:
    """Any engine's result as pandas."""
    return aa.to_pandas(frame)


def _norm(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def assert_equal_data(result: Any, expected: dict[str, list[Any]], *, sort: bool = False,
                      rel: float = 1e-9, abs_: float = 1e-12) -> None:
    """Columns (names *and* order) and values equal; floats within a tolerance,
    NaN == None. With ``sort``, rows are compared after sorting by all columns."""
    df = collect(result)
    assert list(df.columns) == list(expected), f"columns {list(df.columns)} != {list(expected)}"
    exp = pd.DataFrame(expected)
    if sort and len(df):
        df = df.sort_values(list(df.columns), kind="mergesort", na_position="first")
        exp = exp.sort_values(list(exp.columns), kind="mergesort", na_position="first")
    assert len(df) == len(exp), f"{len(df)} rows != {len(exp)} expected\n{df}"
    for col in expected:
        got = [_norm(v) for v in df[col].tolist()]
        want = [_norm(v) for v in exp[col].tolist()]
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if isinstance(w, float) or isinstance(g, float):
                if g is None or w is None:
                    assert g is None and w is None, f"{col}[{i}]: {g!r} != {w!r}\n{df}"
                else:
                    assert math.isclose(g, w, rel_tol=rel, abs_tol=abs_), f"{col}[{i}]: {g!r} != {w!r}\n{df}"
            else:
                assert g == w, f"{col}[{i}]: {g!r} != {w!r}\n{df}"


def offset(lat: float, lon: float, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    """A point ``north_m`` north and ``east_m`` east of (lat, lon) - exact along a meridian
    (east offsets are exact along the parallel only to first order: keep them small or 0)."""
    dlat = north_m / EARTH_RADIUS_M * 180.0 / math.pi
    dlon = east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))) * 180.0 / math.pi
    return lat + dlat, lon + dlon
