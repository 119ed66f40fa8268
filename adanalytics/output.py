"""Writing results: every result as Parquet and CSV (shared by the CLI, demo and report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def result_name(analysis: str, by: str | None = None) -> str:
    """File stem of an analysis result, e.g. ``ctr_by_month`` or ``visit_profile``."""
    return f"{analysis}_by_{by}" if by else analysis


def write_frame(df: pd.DataFrame, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``df`` as ``NAME.parquet`` and ``NAME.csv`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq_path, csv_path = out / f"{name}.parquet", out / f"{name}.csv"
    df.to_parquet(pq_path, index=False)
    df.to_csv(csv_path, index=False)
    return [pq_path, csv_path]
