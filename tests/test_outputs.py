"""Every analysis's output schema (SPEC §3, last paragraph; ``semantics.OUTPUT_COLUMNS``):
exactly the named columns in order, their types, the input's id type, one row per key."""

from __future__ import annotations

import pandas as pd
import pytest

import adanalytics as aa
from adanalytics.dataset import BY_ANALYSES
from adanalytics.semantics import OUTPUT_COLUMNS, output_columns, output_keys
from tests.builders import sample_dataset
from tests.helpers import collect, open_frames

CASES = [(a, by) for a in aa.ANALYSES for by in (("total", "month") if a in BY_ANALYSES else (None,))]


@pytest.mark.parametrize("int_ids", [False, True], ids=["str_ids", "int_ids"])
def test_columns_types_and_keys(engine: str, int_ids: bool) -> None:
    ds = open_frames(sample_dataset(int_ids), engine)
    for analysis, by in CASES:
        df = collect(ds.run(analysis, by=by or "total"))
        label = f"{analysis}(by={by})"
        assert list(df.columns) == output_columns(analysis, by), label
        assert len(df) > 0, f"{label}: the sample should give rows"
        types = dict(OUTPUT_COLUMNS[analysis])
        for col in df.columns:
            kind = types[col]
            dtype = df[col].dtype
            if kind == "id":
                want = int if int_ids else str
                assert all(type(v) is want for v in df[col].tolist()), (label, col, dtype)
                assert (dtype.kind == "i") if int_ids else not pd.api.types.is_numeric_dtype(dtype)
            elif kind == "str":
                assert all(isinstance(v, str) for v in df[col].tolist()), (label, col)
            elif kind == "int64":
                assert dtype == "int64", (label, col, dtype)
            elif kind == "float64":
                assert dtype == "float64", (label, col, dtype)
            else:
                assert str(dtype) == kind, (label, col, dtype)
        keys = output_keys(analysis, by)
        assert not df.duplicated(keys).any(), f"{label}: one row per key {keys}"


def test_sample_has_both_months(engine: str) -> None:
    # t0 = 2024-05-31 20:00 local; the visit at +4 h is on June 1 (local)
    ds = open_frames(sample_dataset(), engine)
    assert collect(ds.visits(by="month"))["month"].tolist() == ["2024-05", "2024-06", "2024-05"]
