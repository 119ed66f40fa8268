"""Reading and validating a dataset into pandas frames (the reference pipeline)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from adanalytics import io, schema
from adanalytics.engines.base import Tables
from adanalytics.engines.pandas.validate import check_table, ids_as_ints_if_canonical, violations
from adanalytics.errors import ValidationError
from adanalytics.schema import REJECT_RULE_COLUMN, ValidationReport

log = logging.getLogger("adanalytics")

#: id columns that must share one type across tables (they are joined)
_SHARED_IDS = {
    "campaign_id": ("campaigns", "ads"),
    "establishment_id": ("establishments", "ads"),
    "ad_id": ("ads", "interactions"),
    "user_id": ("interactions", "locations"),
}


def harmonise_ids(raw: dict[str, pd.DataFrame]) -> None:
    """Joined id columns get one type: integers only if integers on both sides.

    An empty table has no id type of its own (an empty column reads as text): it takes
    the other side's, so integer ids stay integers when e.g. ``locations`` is empty.
    """
    for col, tables in _SHARED_IDS.items():
        typed = [t for t in tables if len(raw[t])]
        kinds = {pd.api.types.is_integer_dtype(raw[t][col].dtype) for t in typed}
        if kinds == {True}:
            for t in tables:
                if not len(raw[t]):
                    raw[t][col] = raw[t][col].astype("int64")
        if len(kinds) > 1:
            for t in tables:
                s = raw[t][col]
                raw[t][col] = s.astype(object).map(lambda v: None if pd.isna(v) else str(v))


def rejected_rows(raw: pd.DataFrame, checked: pd.DataFrame, table: str) -> pd.DataFrame:
    """Invalid rows as text (their raw values) plus the rule they broke."""
    bad = checked[REJECT_RULE_COLUMN].notna().to_numpy()
    rows = raw.loc[bad, schema.columns(table)].astype(object)
    rows = rows.apply(lambda s: s.map(lambda v: None if _isna(v) else str(v)))
    rows[REJECT_RULE_COLUMN] = checked.loc[bad, REJECT_RULE_COLUMN].to_numpy()
    return rows.reset_index(drop=True)


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def validate_frames(
    raw: dict[str, pd.DataFrame], csv_tables: set[str] | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], ValidationReport]:
    """Check every table in dependency order: (valid frames, rejected rows, report)."""
    for t in csv_tables or ():
        for col in schema.id_columns(t):
            raw[t][col] = ids_as_ints_if_canonical(raw[t][col])
    harmonise_ids(raw)
    parents: dict[str, pd.Index] = {}
    valid: dict[str, pd.DataFrame] = {}
    rejected: dict[str, pd.DataFrame] = {}
    report = ValidationReport()
    for t in schema.VALIDATION_ORDER:
        checked = check_table(t, raw[t], parents)
        ok = checked[REJECT_RULE_COLUMN].isna().to_numpy()
        report.violations.extend(violations(t, checked, raw[t]))
        report.rows[t] = int(ok.sum())
        if not ok.all():
            rejected[t] = rejected_rows(raw[t], checked, t)
        v = checked.loc[ok, schema.columns(t)].reset_index(drop=True)
        for col in schema.id_columns(t):  # nullable ints (ids read with nulls) -> int64
            if isinstance(v[col].dtype, pd.Int64Dtype):
                v[col] = v[col].astype("int64")
        valid[t] = v
        if t in schema.PRIMARY_KEYS:
            parents[t] = pd.Index(v[schema.PRIMARY_KEYS[t]])
    return valid, rejected, report


def write_rejected(rejected: dict[str, pd.DataFrame], path: str,
                   storage_options: dict[str, Any] | None = None) -> None:
    """Write rejected rows as ``PATH/<table>.parquet`` (text columns + ``_rule``)."""
    fs, root = io.filesystem(path, storage_options)
    fs.makedirs(root, exist_ok=True)
    for t, df in rejected.items():
        with fs.open(f"{root.rstrip('/')}/{t}.parquet", "wb") as fh:
            df.to_parquet(fh, index=False)


def finish_validation(report: ValidationReport, rejected: dict[str, pd.DataFrame],
                      on_invalid: str, rejected_path: str | None,
                      storage_options: dict[str, Any] | None) -> None:
    """Raise (``on_invalid="raise"``) or write/report quarantined rows."""
    if report.ok:
        return
    if on_invalid == "raise":
        raise ValidationError(report)
    if rejected_path is not None:
        write_rejected(rejected, rejected_path, storage_options)
        report.rejected_path = rejected_path
    counts = ", ".join(f"{t}: {n:,}" for t, n in report.rejected.items())
    log.warning("quarantined invalid rows (%s); see Dataset.validation", counts)


def load(
    path: str,
    *,
    on_invalid: str,
    rejected_path: str | None,
    storage_options: dict[str, Any] | None,
) -> tuple[Tables, ValidationReport, dict[str, pd.DataFrame]]:
    """Read, coerce and validate the five tables of ``path`` into pandas."""
    sources = io.locate_tables(path, storage_options)
    raw = {t: io.read_pandas(src, storage_options) for t, src in sources.items()}
    csv_tables = {t for t, s in sources.items() if s.format == "csv"}
    valid, rejected, report = validate_frames(raw, csv_tables)
    finish_validation(report, rejected, on_invalid, rejected_path, storage_options)
    return Tables(**valid), report, rejected


def frames_from_dicts(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Build raw frames from in-memory objects (dicts of columns or DataFrames)."""
    out = {}
    for t in schema.TABLE_NAMES:
        if t not in data:
            from adanalytics.errors import DataContractError

            msg = f"missing table '{t}'; expected tables: {', '.join(schema.TABLE_NAMES)}"
            raise DataContractError(msg)
        df = data[t] if isinstance(data[t], pd.DataFrame) else pd.DataFrame(data[t])
        df = df.copy()
        for col in schema.id_columns(t):
            # integer ids next to a None arrive as float64: keep them integers (nullable)
            if col in df.columns and pd.api.types.is_float_dtype(df[col].dtype):
                nn = df[col].dropna()
                if len(nn) and (nn == nn.round()).all() and (nn.abs() < 2**53).all():
                    df[col] = df[col].astype("Int64")
        missing = [c for c in schema.columns(t) if c not in df.columns]
        if missing:
            from adanalytics.errors import DataContractError

            msg = (f"table '{t}' is missing column(s): {', '.join(missing)}; expected "
                   f"columns: {', '.join(schema.columns(t))}")
            raise DataContractError(msg)
        out[t] = df[schema.columns(t)].copy()
    return out


