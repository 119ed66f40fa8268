"""Validation of the big tables (SPEC §2) as Spark expressions: the rules of
:mod:`adanalytics.schema`, with the coercions of the pandas reference
(:mod:`adanalytics.engines.pandas.validate`) written as Column expressions.

Timestamps given as text take a JVM fast path for the forms the contract names
(ISO-8601 ``YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|+HH[:MM]]``, naive = UTC, and
epoch milliseconds as digits). A non-null text that the fast path cannot read - an
exotic form, or simply an invalid value - is handed to the reference parser
(:func:`adanalytics.engines.pandas.validate.parse_ts`) in a vectorised pandas UDF that
only ever sees those rows, so the accepted set and the parsed instants are the
reference's, while valid data never leaves the JVM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from adanalytics import schema
from adanalytics.engines.pandas.validate import _CANONICAL_INT, _DIGITS
from adanalytics.schema import REJECT_RULE_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

#: Python's ``str.strip()`` whitespace, as a Java regex character class.
_WS = r"[\s\x1c-\x1f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: A finite decimal number as ``pandas.to_numeric`` reads it (non-finite spellings are
#: invalid coordinates anyway).
_NUMBER = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
#: The ISO-8601 forms of the fast path: date, time, fraction, zone.
_ISO = (r"^([0-9]{4}-[0-9]{2}-[0-9]{2})"
        r"(?:[T ]([0-9]{2}:[0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
        r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$")
#: The most common forms, which Spark's cast reads as they are (zoned) or with a "Z"
#: appended (naive = UTC).
_SIMPLE_ZONED = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                 r"(Z|[+-][0-9]{2}:[0-9]{2})$")
_SIMPLE_NAIVE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"
#: Instants pandas can hold (datetime64[ns]), in microseconds.
_MIN_US = int(pd.Timestamp.min.value) // 1000 + 1
_MAX_US = int(pd.Timestamp.max.value) // 1000
_MAX_EPOCH_MS = 9.2e15
_ACTIONS = ("view", "click")
#: Prefix of the raw (as read) copy of each column kept for reports and rejected rows.
RAW = "_raw_"
#: Rows whose text timestamp needs the reference parser.
TS_FALLBACK = "_ts_fallback"


def strip(c: Column) -> Column:
    """Python's ``str.strip()`` on a string column."""
    from pyspark.sql import functions as F

    return F.regexp_replace(c, f"^{_WS}+|{_WS}+$", "")


def is_integral(t: DataType) -> bool:
    from pyspark.sql import types as T

    return isinstance(t, T.IntegralType)


def is_text(t: DataType) -> bool:
    from pyspark.sql import types as T

    return isinstance(t, (T.StringType, T.VarcharType, T.CharType))


def noncanonical_ids(c: Column) -> Column:
    """1 for a value that keeps a text id column from becoming integers (see
    :func:`adanalytics.engines.pandas.validate.ids_as_ints_if_canonical`): a null, or a
    value that is not a canonical integer."""
    from pyspark.sql import functions as F

    return F.when(c.isNull() | ~c.rlike(_CANONICAL_INT.pattern), 1).otherwise(0)


def to_float(c: Column, t: DataType) -> Column:
    """Numbers as double, null where not a number (the reference's ``to_float``)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(t, T.BooleanType):
        return F.lit(None).cast("double")
    if isinstance(t, T.NumericType):
        return c.cast("double")
    if is_text(t):
        return F.when(c.rlike(_NUMBER), strip(c).try_cast("double"))
    return F.lit(None).cast("double")


def coordinate_bad(v: Column, limit: float) -> Column:
    """Not a finite number in [-limit, limit]."""
    from pyspark.sql import functions as F

    return v.isNull() | F.isnan(v) | (F.abs(v) > F.lit(limit))


def _epoch_ms(v: Column) -> Column:
    """Epoch milliseconds (double) -> timestamp, null unless finite and |v| < 9.2e15."""
    from pyspark.sql import functions as F

    ok = v.isNotNull() & ~F.isnan(v) & (F.abs(v) < F.lit(_MAX_EPOCH_MS))
    return F.when(ok, F.timestamp_millis(v.cast("long")))


def _in_pandas_range(ts: Column) -> Column:
    from pyspark.sql import functions as F

    us = F.unix_micros(ts)
    return F.when((us >= F.lit(_MIN_US)) & (us <= F.lit(_MAX_US)), ts)


def _iso_fast(s: Column) -> Column:
    """The fast-path ISO forms -> timestamp (null if not one of them, or not a real
    date/time: those rows go to the reference parser)."""
    from pyspark.sql import functions as F

    def g(i: int) -> Column:
        return F.regexp_extract(s, _ISO, i)

    date, hm, sec, frac, zone = g(1), g(2), g(3), g(4), g(5)
    time = F.when(hm == "", F.lit("00:00")).otherwise(hm)
    sec = F.when(sec == "", F.lit("00")).otherwise(sec)
    frac = F.when(frac == "", F.lit("")).otherwise(F.concat(F.lit("."), F.substring(frac, 1, 6)))
    # zone: none -> UTC; +HH -> +HH:00; +HHMM -> +HH:MM
    z = F.regexp_replace(zone, ":", "")
    zone = (F.when(zone == "", F.lit("Z")).when(zone == "Z", F.lit("Z"))
            .when(F.length(z) == 3, F.concat(z, F.lit(":00")))
            .otherwise(F.concat(F.substring(z, 1, 3), F.lit(":"), F.substring(z, 4, 2))))
    text = F.concat(date, F.lit("T"), time, F.lit(":"), sec, frac, zone)
    parsed = (F.when(s.rlike(_SIMPLE_ZONED), s.try_cast("timestamp"))
              .when(s.rlike(_SIMPLE_NAIVE), F.concat(s, F.lit("Z")).try_cast("timestamp"))
              .when(s.rlike(_ISO), text.try_cast("timestamp")))
    return _in_pandas_range(parsed)


def parse_ts(c: Column, t: DataType) -> tuple[Column, Column]:
    """Instants as TimestampType (null = unparseable) and a flag: rows the reference
    parser must decide (text the fast path cannot read)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    no = F.lit(False)
    if isinstance(t, T.TimestampType):
        return c, no
    if isinstance(t, T.TimestampNTZType):
        # naive = UTC; rebuilt from its fields in UTC, so the session zone plays no part
        utc = F.make_timestamp(F.year(c), F.month(c), F.dayofmonth(c), F.hour(c), F.minute(c),
                               F.date_part(F.lit("SECOND"), c), F.lit("UTC"))
        return _in_pandas_range(utc), no
    if isinstance(t, T.BooleanType):
        return F.lit(None).cast("timestamp"), no
    if isinstance(t, T.NumericType):
        return _epoch_ms(c.cast("double")), no
    s = strip(c.cast("string"))
    digits = s.rlike(_DIGITS.pattern)
    fast = F.when(digits, _epoch_ms(s.try_cast("double"))).otherwise(_iso_fast(s))
    fallback = c.isNotNull() & ~digits & fast.isNull()
    return fast, F.coalesce(fallback, no)


def reference_ts_udf():  # type: ignore[no-untyped-def]
    """Vectorised UDF: text -> epoch microseconds by the reference parser (null = bad)."""
    from pyspark.sql.functions import pandas_udf

    from adanalytics.engines.pandas.validate import parse_ts as reference

    @pandas_udf("long")  # type: ignore[call-overload]
    def reference_ts(s: pd.Series) -> pd.Series:
        out, bad = reference(s.astype(object).where(s.notna(), None))
        us = pd.Series(out.array.asi8 // 1000, dtype="Int64")
        return us.mask(bad)

    return reference_ts


def action(c: Column, t: DataType) -> tuple[Column, Column]:
    """Lower-cased, stripped action and whether it is invalid."""
    from pyspark.sql import functions as F

    if not is_text(t):
        return c.cast("string"), F.lit(True)
    # the usual case (already lower case, no spaces) skips the regular expression
    a = F.when(c.isin(*_ACTIONS), c).otherwise(F.lower(strip(c)))
    return a, ~F.coalesce(a.isin(*_ACTIONS), F.lit(False))


@dataclass
class Checked:
    """A big table with its contract columns coerced, raw copies and ``_rule``."""

    table: str
    frame: DataFrame

    def valid(self) -> DataFrame:
        from pyspark.sql import functions as F

        return self.frame.where(F.col(REJECT_RULE_COLUMN).isNull()).select(*schema.columns(self.table))

    def rejected(self) -> DataFrame:
        """Invalid rows as text (their raw values) plus the rule they broke."""
        from pyspark.sql import functions as F

        cols = [F.col(RAW + c).cast("string").alias(c) for c in schema.columns(self.table)]
        return self.frame.where(F.col(REJECT_RULE_COLUMN).isNotNull()).select(
            *cols, REJECT_RULE_COLUMN)

    def raw_examples(self, rule_name: str, n: int) -> DataFrame:
        from pyspark.sql import functions as F

        cols = [F.col(RAW + c).alias(c) for c in schema.columns(self.table)]
        return self.frame.where(F.col(REJECT_RULE_COLUMN) == rule_name).select(*cols).limit(n)


def coerce(table: str, raw: DataFrame, id_types: dict[str, str]) -> DataFrame:
    """Raw copies (``_raw_<col>``), coerced contract columns, per-rule broken flags
    (``_bad_<rule>``) and the :data:`TS_FALLBACK` flag.

    ``id_types`` maps each id column to ``"long"``, ``"string"`` or ``"keep"``.
    """
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in raw.schema.fields}
    out: list[Column] = [F.col(c).alias(RAW + c) for c in schema.columns(table)]
    fallback = F.lit(False)
    for col, kind in schema.TABLES[table]:
        c, t = F.col(col), types[col]
        if kind == "id":
            target = id_types.get(col, "keep")
            v = c if target == "keep" else c.cast(target)
            out += [v.alias(col), c.isNull().alias(f"_bad_{col}_not_null")]
        elif kind == "str":
            out.append(c.cast("string").alias(col))
        elif kind == "float64":
            v = to_float(c, t)
            out += [v.alias(col),
                    coordinate_bad(v, 90.0 if col == "lat" else 180.0).alias(f"_bad_{col}_range")]
        elif kind == "timestamp":
            v, fallback = parse_ts(c, t)
            out.append(v.alias(col))
        elif kind == "action":
            v, bad = action(c, t)
            out += [v.alias(col), bad.alias("_bad_action_valid")]
    out.append(fallback.alias(TS_FALLBACK))
    return raw.select(*out)


def resolve_fallback(df: DataFrame) -> DataFrame:
    """Send the rows flagged :data:`TS_FALLBACK` through the reference parser."""
    from pyspark.sql import functions as F

    slow = df.where(F.col(TS_FALLBACK)).withColumn(
        "ts", F.timestamp_micros(reference_ts_udf()(F.col(RAW + "ts").cast("string"))))
    return df.where(~F.col(TS_FALLBACK)).unionByName(slow)


def add_rule(table: str, df: DataFrame, parents: dict[str, DataFrame]) -> DataFrame:
    """The first rule (in :func:`adanalytics.schema.rules_for` order) each row breaks.

    ``parents`` maps a parent table to a one-column frame of its valid keys (foreign
    keys are checked with a broadcast left join against it).
    """
    from pyspark.sql import functions as F

    bad: dict[str, Column] = {}
    for r in schema.rules_for(table):
        if r.name == "ts_parseable":
            bad[r.name] = F.col("ts").isNull()
        elif r.references is not None:
            parent_table, parent_col = r.references
            if parent_table not in parents:
                continue
            flag = f"_has_{r.column}"
            keys = parents[parent_table].select(F.col(parent_col).alias(r.column),
                                                F.lit(True).alias(flag)).distinct()
            df = df.join(F.broadcast(keys), on=r.column, how="left")
            bad[r.name] = F.col(flag).isNull()
        elif f"_bad_{r.name}" in df.columns:
            bad[r.name] = F.col(f"_bad_{r.name}")
    rule = None
    for name, cond in bad.items():
        rule = F.when(cond, F.lit(name)) if rule is None else rule.when(cond, F.lit(name))
    keep = [RAW + c for c in schema.columns(table)] + schema.columns(table)
    return df.select(*keep, (rule if rule is not None else F.lit(None).cast("string"))
                     .alias(REJECT_RULE_COLUMN))
