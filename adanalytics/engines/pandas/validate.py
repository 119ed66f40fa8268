"""Validation kernels (SPEC §2): coerce raw columns to the contract types and name the
first rule each row breaks. Dask runs :func:`check_table` per partition."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from adanalytics import schema
from adanalytics.schema import REJECT_RULE_COLUMN

_CANONICAL_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_DIGITS = re.compile(r"^-?[0-9]+(\.0*)?$")
_ACTIONS = frozenset(("view", "click"))


def ids_as_ints_if_canonical(s: pd.Series) -> pd.Series:
    """Id column read from text: integers when every value is a canonical integer
    (``"42"``, not ``"042"``), otherwise strings. Non-text columns are returned as is."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return s
    nn = s.dropna()
    if len(nn) and nn.astype(str).str.match(_CANONICAL_INT).all() and not s.isna().any():
        return s.astype(np.int64)
    return s.astype(object).where(s.notna(), None)


def to_float(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers as float64; second value: rows that are not finite numbers."""
    if pd.api.types.is_bool_dtype(s.dtype):
        f = pd.Series(np.nan, index=s.index)
    else:
        f = pd.to_numeric(s, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(f.to_numpy())
    return f, bad


def parse_ts(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Instants as ``datetime64[ns, UTC]``; second value: unparseable rows.

    Accepts timestamps (naive = UTC), ISO-8601 strings with or without offset (naive =
    UTC), and epoch milliseconds (integers or digit strings).
    """
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    elif pd.api.types.is_bool_dtype(s.dtype):
        pass
    elif pd.api.types.is_numeric_dtype(s.dtype):
        out = _from_epoch_ms(s)
    else:
        text = s.astype(object)
        is_num = text.map(lambda v: isinstance(v, (int, float, np.integer, np.floating))
                          and not isinstance(v, bool)).to_numpy(dtype=bool)
        as_str = text.where(~is_num).astype("string")
        digits = as_str.str.strip().str.match(_DIGITS).fillna(False).to_numpy(dtype=bool)
        iso = ~is_num & ~digits & text.notna().to_numpy()
        if iso.any():
            parsed = pd.to_datetime(
                as_str[iso].str.strip(), utc=True, format="ISO8601", errors="coerce"
            )
            if parsed.isna().any():  # one odd row makes the fast path give up: go row by row
                # NaT-only or out-of-range rows must not break the dtype conversion below
                parsed = pd.to_datetime(as_str[iso].map(_parse_one), utc=True, errors="coerce")
            out[iso] = parsed.astype("datetime64[ns, UTC]")
        num = is_num | digits
        if num.any():
            vals = pd.to_numeric(text[num].astype(str).str.strip(), errors="coerce")
            out[num] = _from_epoch_ms(vals)
    bad = out.isna().to_numpy()
    return out, bad


def _parse_one(v: object) -> pd.Timestamp:
    try:
        t = pd.Timestamp(str(v).strip())
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if t is pd.NaT:
        return pd.NaT
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _from_epoch_ms(s: pd.Series) -> pd.Series:
    v = pd.to_numeric(s, errors="coerce").astype(np.float64)
    ok = np.isfinite(v.to_numpy()) & (np.abs(v.to_numpy()) < 9.2e15)
    ms = np.where(ok, v.to_numpy(), 0).astype(np.int64)
    out = pd.Series(pd.to_datetime(ms, unit="ms", utc=True), index=s.index)
    return out.where(ok, pd.NaT).astype("datetime64[ns, UTC]")


def parse_date(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Calendar dates as midnight ``datetime64[ns]`` (naive); second value: bad rows."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        d = s.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        d = s
    else:
        # value by value (a dimension table: few distinct values): a date written with a
        # time and offset ("2024-01-01T10:00:00-03:00") is the date as written, and mixed
        # offsets must not turn the column into objects
        text = s.astype(object).map(lambda v: None if _isna(v) else str(v))
        uniq = {v: _parse_date_one(v) for v in pd.unique(text.dropna())}
        d = pd.Series(pd.to_datetime([uniq.get(v, pd.NaT) if v is not None else pd.NaT
                                      for v in text]), index=s.index)
    d = d.dt.normalize().astype("datetime64[ns]")
    return d, d.isna().to_numpy()


def _isna(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _parse_date_one(v: str) -> pd.Timestamp:
    t = pd.to_datetime(v, format="ISO8601", errors="coerce")
    if t is pd.NaT:
        return pd.NaT
    return t.tz_localize(None) if t.tzinfo is not None else t


def _not_null(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy()


def check_table(
    table: str,
    df: pd.DataFrame,
    parents: dict[str, pd.Index] | None = None,
    check_unique: bool = True,
) -> pd.DataFrame:
    """Coerce ``df`` to the contract types of ``table`` and add the ``_rule`` column.

    ``_rule`` holds the first rule (in :func:`adanalytics.schema.rules_for` order) each
    row breaks, or None. ``parents`` maps a parent table to its valid primary keys (for
    foreign-key rules). The columns are projected to the contract's columns.
    """
    parents = parents or {}
    out = pd.DataFrame(index=df.index)
    broken: dict[str, np.ndarray] = {}
    for col, kind in schema.TABLES[table]:
        s = df[col]
        if kind == "id":
            out[col] = s
            broken[f"{col}_not_null"] = _not_null(s)
        elif kind == "str":
            out[col] = s.astype(object).where(s.notna(), None)
        elif kind == "float64":
            out[col], bad = to_float(s)
            lim = 90.0 if col == "lat" else 180.0
            with np.errstate(invalid="ignore"):
                bad = bad | (np.abs(out[col].to_numpy()) > lim)
            broken[f"{col}_range"] = bad
        elif kind == "timestamp":
            out[col], broken[f"{col}_parseable"] = parse_ts(s)
        elif kind == "date":
            out[col], broken[f"{col}_valid"] = parse_date(s)
        elif kind == "action":
            a = s.astype(object).map(lambda v: v.strip().lower() if isinstance(v, str) else v)
            broken["action_valid"] = ~a.isin(_ACTIONS).to_numpy()
            out[col] = a
    pk = schema.PRIMARY_KEYS.get(table)
    if pk is not None and check_unique:
        broken[f"{pk}_unique"] = out[pk].duplicated(keep="first").to_numpy() & out[pk].notna().to_numpy()
    for r in schema.rules_for(table):
        if r.references is not None:
            parent_table, _ = r.references
            valid = parents.get(parent_table)
            if valid is None:
                continue
            broken[r.name] = ~out[r.column].isin(valid).to_numpy()
    rule_col = np.full(len(out), None, dtype=object)
    for r in reversed(schema.rules_for(table)):  # reversed: the first rule wins
        mask = broken.get(r.name)
        if mask is not None and mask.any():
            rule_col[mask] = r.name
    out[REJECT_RULE_COLUMN] = rule_col
    return out


def violations(table: str, checked: pd.DataFrame, raw: pd.DataFrame) -> list[schema.RuleViolation]:
    """Summarise the broken rules of a checked table (examples show the raw values)."""
    rules = checked[REJECT_RULE_COLUMN]
    bad = rules.notna()
    if not bad.any():
        return []
    out = []
    counts = rules[bad].value_counts()
    for r in schema.rules_for(table):
        if r.name in counts.index:
            rows = raw.loc[(rules == r.name).to_numpy(), schema.columns(table)]
            out.append(schema.RuleViolation(table, r.name, int(counts[r.name]),
                                            rows.head(schema.N_EXAMPLES).copy()))
    return out
