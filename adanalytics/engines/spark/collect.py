"""Moving frames between pandas and Spark with the reference engine's types.

:func:`spark_to_pandas` collects a Spark result with exactly the pandas engine's dtypes:
integers (Spark int or long) as int64, doubles as float64, strings as object, and
timestamps as ``datetime64[ns, UTC]`` instants. Spark's own ``toPandas`` renders
timestamps as naive wall-clock times of the *session* time zone; here they travel as
epoch microseconds instead, so the instant never depends on the session zone.

:func:`to_spark` goes the other way for validated pandas tables (explicit Arrow types:
ids long or string by the pandas dtype, ``ts`` TimestampType, dates DateType).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics import schema

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession


def spark_to_pandas(df: DataFrame) -> pd.DataFrame:
    """Collect a Spark DataFrame into pandas with the reference engine's dtypes.

    Rows keep the frame's order (every analysis returns its rows in key order).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = list(df.schema.fields)
    cols = []
    for f in fields:
        c = df[f.name]
        if isinstance(f.dataType, T.TimestampType):
            c = F.unix_micros(c)
        cols.append(c.alias(f.name))
    pdf = df.select(*cols).toPandas() if fields else df.toPandas()
    out = {}
    for f in fields:
        s = pdf[f.name]
        t = f.dataType
        if isinstance(t, T.TimestampType):
            s = pd.Series(pd.to_datetime(s, unit="us", utc=True), index=s.index)
            s = s.astype("datetime64[ns, UTC]")
        elif isinstance(t, T.IntegralType):
            s = s.astype(np.int64) if not s.isna().any() else s.astype(np.float64)
        elif isinstance(t, (T.DoubleType, T.FloatType)):
            s = s.astype(np.float64)
        elif isinstance(t, T.BooleanType):
            s = s.astype(bool) if not s.isna().any() else s.astype(object)
        elif isinstance(t, T.StringType):
            s = s.astype(object).where(s.notna(), None)
        out[f.name] = s
    return pd.DataFrame(out, index=pd.RangeIndex(len(pdf)))


def arrow_column(s: pd.Series, kind: str | None = None) -> pa.Array:
    """A pandas column as an Arrow array Spark maps to the right type.

    ``kind`` is the contract's logical type (``"date"`` makes a date32 column; any
    other value follows the dtype): integers int64, floats float64, tz-aware instants
    ``timestamp[us, UTC]``, everything else text (None stays null).
    """
    import pyarrow as pa

    if kind == "date":
        d = pd.to_datetime(s).dt.tz_localize(None) if isinstance(s.dtype, pd.DatetimeTZDtype) else s
        return pa.array(pd.Series(d).dt.date.where(pd.Series(d).notna(), None), pa.date32())
    if isinstance(s.dtype, pd.DatetimeTZDtype) or kind == "timestamp":
        ts = s if isinstance(s.dtype, pd.DatetimeTZDtype) else pd.to_datetime(s, utc=True)
        return pa.array(ts.dt.tz_convert("UTC"), pa.timestamp("ns", tz="UTC")).cast(
            pa.timestamp("us", tz="UTC"), safe=False)
    if pd.api.types.is_bool_dtype(s.dtype):
        return pa.array(s, pa.bool_())
    if pd.api.types.is_integer_dtype(s.dtype):
        return pa.array(s.astype(np.int64), pa.int64())
    if pd.api.types.is_float_dtype(s.dtype):
        return pa.array(s.astype(np.float64), pa.float64())
    values = [None if _isna(v) else (v if isinstance(v, str) else str(v)) for v in s.tolist()]
    return pa.array(values, pa.string())


def _isna(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def to_spark(spark: SparkSession, table: str, df: pd.DataFrame) -> DataFrame:
    """A validated pandas table as a Spark DataFrame with explicit column types."""
    import pyarrow as pa

    arrays = {col: arrow_column(df[col], kind) for col, kind in schema.TABLES[table]}
    sdf = spark.createDataFrame(pa.table(arrays))
    if table in schema.DIMENSION_TABLES:
        remember_local(sdf, df[schema.columns(table)].reset_index(drop=True))
    return sdf


def to_spark_frame(spark: SparkSession, df: pd.DataFrame) -> DataFrame:
    """Any small pandas frame as a Spark DataFrame (types by dtype, see :func:`arrow_column`)."""
    import pyarrow as pa

    return spark.createDataFrame(pa.table({c: arrow_column(df[c]) for c in df.columns}))


#: The driver-side pandas copy of each small Spark table (the dimension tables are
#: validated in pandas anyway): the grid replication and the ad ranking read it instead
#: of collecting the table again for every analysis.
_LOCAL_COPIES: weakref.WeakKeyDictionary[Any, pd.DataFrame] = weakref.WeakKeyDictionary()


def remember_local(sdf: DataFrame, pdf: pd.DataFrame) -> DataFrame:
    """Register ``pdf`` as the pandas copy of the small Spark table ``sdf``."""
    _LOCAL_COPIES[sdf] = pdf
    return sdf


def small_to_pandas(sdf: DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of a small Spark table on the driver (its registered copy if any)."""
    pdf = _LOCAL_COPIES.get(sdf)
    if pdf is None or any(c not in pdf.columns for c in columns):
        return spark_to_pandas(sdf.select(*columns))
    return pdf[columns].reset_index(drop=True)
