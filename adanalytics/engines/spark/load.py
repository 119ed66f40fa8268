"""Reading and validating a dataset into Spark DataFrames.

- The small dimension tables (campaigns, ads, establishments) go through the pandas
  reference pipeline on the driver, then become Spark frames with explicit types.
- The big fact tables (interactions, locations) are read by Spark itself (Parquet file
  or directory, hive partitions allowed; CSV with a header, all columns as text) and
  validated with Spark expressions (:mod:`adanalytics.engines.spark.validate`); the
  foreign key ``interactions.ad_id`` is checked with a broadcast join against the valid
  ads.
- Id types follow the reference: text ids become integers only when every value is a
  canonical integer; joined id columns get one type
  (:func:`adanalytics.engines.pandas.load.harmonise_ids`, applied to the very same
  decision so the engines cannot drift apart).
- ``s3://`` and other remote URLs: Spark would need the ``hadoop-aws`` connector, which
  this installation does not ship, so remote datasets are read through fsspec/pyarrow on
  the driver, validated by the pandas pipeline and handed to Spark with
  ``createDataFrame`` (bounded by driver memory; copy big remote data to a local or
  cluster file system for out-of-core runs).

The validation report (rules, counts, example rows) equals the pandas engine's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics import io, schema
from adanalytics.engines.base import Tables
from adanalytics.engines.pandas import load as ref_load
from adanalytics.engines.pandas.validate import check_table, ids_as_ints_if_canonical, violations
from adanalytics.engines.spark import validate as sv
from adanalytics.engines.spark.collect import spark_to_pandas, to_spark
from adanalytics.errors import DataContractError, ValidationError
from adanalytics.schema import REJECT_RULE_COLUMN, ValidationReport

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("adanalytics")

SMALL = schema.DIMENSION_TABLES
BIG = schema.FACT_TABLES


def from_frames(spark: SparkSession, data: dict[str, Any], *, on_invalid: str,
                rejected_path: str | None) -> tuple[Tables, ValidationReport, dict[str, Any]]:
    """Tables from in-memory data, validated by the reference pipeline."""
    raw = ref_load.frames_from_dicts(data)
    valid, rejected, report = ref_load.validate_frames(raw)
    ref_load.finish_validation(report, rejected, on_invalid, rejected_path, None)
    tables = {t: to_spark(spark, t, valid[t]) for t in schema.TABLE_NAMES}
    return Tables(**align_empty_ids(tables, report.rows)), report, rejected


def align_empty_ids(tables: dict[str, DataFrame], rows: dict[str, int]) -> dict[str, DataFrame]:
    """An empty table's joined id columns take the other side's Spark type.

    An empty column has no type of its own (pandas gives it object or float64); Spark
    must still union and join it with the other side's ids without casting them.
    """
    from adanalytics.engines.spark.collect import _LOCAL_COPIES, remember_local

    out = dict(tables)
    for col, (a, b) in ref_load._SHARED_IDS.items():
        for empty, other in ((a, b), (b, a)):
            if rows.get(empty, 0) == 0 and rows.get(other, 0) > 0:
                target = out[other].schema[col].dataType
                if out[empty].schema[col].dataType != target:
                    local = _LOCAL_COPIES.get(out[empty])
                    out[empty] = out[empty].withColumn(col, out[empty][col].cast(target))
                    if local is not None:
                        remember_local(out[empty], local)
    return out


def _is_local(src: io.TableSource) -> bool:
    return "://" not in src.url or src.url.startswith("file://")


def read_spark(spark: SparkSession, src: io.TableSource) -> DataFrame:
    """A big table as Spark reads it, projected to the contract's columns (raw types)."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    try:
        if src.format == "parquet":
            df = spark.read.parquet(src.path)
        else:
            df = (spark.read.option("header", True).option("inferSchema", False)
                  .option("escape", '"').option("mode", "PERMISSIVE").csv(src.path))
        io.check_columns(src, list(df.columns))
    except PySparkException as exc:
        msg = f"table '{src.name}': cannot read {src.format} at {src.url}: {exc}"
        raise DataContractError(msg) from exc
    cols = schema.columns(src.name)
    if src.format == "csv":  # the reference reads only the empty field as missing
        return df.select(*[F.when(F.col(c) == "", None).otherwise(F.col(c)).alias(c) for c in cols])
    return df.select(*cols)


def _stub(kind: str, rows: int) -> pd.Series:
    """A stand-in id column with the type the reference would see (for harmonise_ids)."""
    n = 1 if rows else 0
    if kind == "long":
        return pd.Series(np.zeros(n, np.int64))
    if kind == "double":
        return pd.Series(np.zeros(n, np.float64))
    return pd.Series(["0"] * n, dtype=object)


def _spark_id_kind(t: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(t, T.IntegralType):
        return "long"
    if isinstance(t, (T.DoubleType, T.FloatType)):
        return "double"
    return "string" if sv.is_text(t) else "other"


def _prescan(raw: DataFrame, table: str, csv: bool) -> dict[str, int]:
    """One pass: row count, non-canonical text ids (CSV) and text timestamps the fast
    path cannot read."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("_rows")]
    if csv:
        aggs += [F.sum(sv.noncanonical_ids(F.col(c))).alias(f"_nc_{c}") for c in schema.id_columns(table)]
    types = {f.name: f.dataType for f in raw.schema.fields}
    if sv.is_text(types["ts"]):
        _, fallback = sv.parse_ts(F.col("ts"), types["ts"])
        aggs.append(F.sum(fallback.cast("long")).alias("_fallback"))
    row = raw.agg(*aggs).collect()[0].asDict()
    return {k: int(v or 0) for k, v in row.items()}


def load(spark: SparkSession, path: str, *, on_invalid: str, rejected_path: str | None,
         storage_options: dict[str, Any] | None) -> tuple[Tables, ValidationReport, dict[str, Any]]:
    """Read, coerce and validate the five tables of ``path`` into Spark frames."""
    sources = io.locate_tables(path, storage_options)
    if not all(_is_local(s) for s in sources.values()):
        return _load_on_driver(spark, path, on_invalid=on_invalid, rejected_path=rejected_path,
                               storage_options=storage_options)
    sc = spark.sparkContext
    sc.setJobDescription(f"adanalytics: validate {path}")
    try:
        return _load_local(spark, sources, on_invalid=on_invalid, rejected_path=rejected_path,
                           storage_options=storage_options)
    finally:
        sc.setJobDescription(None)  # type: ignore[arg-type]


def _load_local(spark: SparkSession, sources: dict[str, io.TableSource], *, on_invalid: str,
                rejected_path: str | None, storage_options: dict[str, Any] | None,
                ) -> tuple[Tables, ValidationReport, dict[str, Any]]:

    # --- read; decide the id types exactly as the reference would -------------------
    small = {t: io.read_pandas(sources[t], storage_options) for t in SMALL}
    for t in SMALL:
        if sources[t].format == "csv":
            for col in schema.id_columns(t):
                small[t][col] = ids_as_ints_if_canonical(small[t][col])
    big = {t: read_spark(spark, sources[t]) for t in BIG}
    scans = {t: _prescan(big[t], t, sources[t].format == "csv") for t in BIG}
    kinds: dict[str, dict[str, str]] = {}
    for t in BIG:
        types = {f.name: f.dataType for f in big[t].schema.fields}
        kinds[t] = {}
        for col in schema.id_columns(t):
            if sources[t].format == "csv":
                canonical = scans[t]["_rows"] > 0 and scans[t][f"_nc_{col}"] == 0
                kinds[t][col] = "long" if canonical else "string"
            else:
                kinds[t][col] = _spark_id_kind(types[col])
    stubs = {t: pd.DataFrame({c: _stub(k, scans[t]["_rows"]) for c, k in kinds[t].items()})
             for t in BIG}
    frames = {**small, **stubs}
    ref_load.harmonise_ids(frames)
    # the reference's decision, read back from the stand-ins: integers, floats kept, text
    id_types: dict[str, dict[str, str]] = {}
    for t in BIG:
        id_types[t] = {}
        for col in kinds[t]:
            dtype = frames[t][col].dtype
            if pd.api.types.is_integer_dtype(dtype):
                id_types[t][col] = "long"
            elif pd.api.types.is_float_dtype(dtype):
                id_types[t][col] = "keep"
            else:
                id_types[t][col] = "string"

    # --- small tables: the reference checks ----------------------------------------
    report = ValidationReport()
    rejected: dict[str, Any] = {}
    valid_pd: dict[str, pd.DataFrame] = {}
    parents: dict[str, pd.Index] = {}
    for t in (t for t in schema.VALIDATION_ORDER if t in SMALL):
        checked = check_table(t, frames[t], parents)
        ok = checked[REJECT_RULE_COLUMN].isna().to_numpy()
        report.violations.extend(violations(t, checked, frames[t]))
        report.rows[t] = int(ok.sum())
        if not ok.all():
            rejected[t] = ref_load.rejected_rows(frames[t], checked, t)
        valid_pd[t] = checked.loc[ok, schema.columns(t)].reset_index(drop=True)
        if t in schema.PRIMARY_KEYS:
            parents[t] = pd.Index(valid_pd[t][schema.PRIMARY_KEYS[t]])
    tables = {t: to_spark(spark, t, valid_pd[t]) for t in SMALL}

    # --- big tables: Spark expressions ----------------------------------------------
    for t in BIG:
        df = sv.coerce(t, big[t], id_types[t])
        if scans[t].get("_fallback", 0):
            df = sv.resolve_fallback(df)
        checked = sv.Checked(t, sv.add_rule(t, df, {"ads": tables["ads"]}))
        counts = {r[REJECT_RULE_COLUMN]: int(r["count"])
                  for r in checked.frame.groupBy(REJECT_RULE_COLUMN).count().collect()}
        report.rows[t] = counts.pop(None, 0)
        for r in schema.rules_for(t):
            if r.name in counts:
                ex = spark_to_pandas(checked.raw_examples(r.name, schema.N_EXAMPLES))
                ex = ex.astype(object).where(ex.notna(), np.nan)
                report.violations.append(schema.RuleViolation(t, r.name, counts[r.name], ex))
        if counts:
            rejected[t] = checked.rejected()
        tables[t] = checked.valid()
    _order_report(report)
    _finish(report, rejected, on_invalid, rejected_path, storage_options)
    return Tables(**align_empty_ids(tables, report.rows)), report, rejected


def _order_report(report: ValidationReport) -> None:
    order = {t: i for i, t in enumerate(schema.VALIDATION_ORDER)}
    report.violations.sort(key=lambda v: order[v.table])
    report.rows = {t: report.rows[t] for t in schema.VALIDATION_ORDER if t in report.rows}


def _finish(report: ValidationReport, rejected: dict[str, Any], on_invalid: str,
            rejected_path: str | None, storage_options: dict[str, Any] | None) -> None:
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


def write_rejected(rejected: dict[str, Any], path: str,
                   storage_options: dict[str, Any] | None = None) -> None:
    """Rejected rows as ``PATH/<table>.parquet`` (text columns + ``_rule``): a file for
    the small tables, a Parquet directory written by Spark for the big ones."""
    frames = {t: df for t, df in rejected.items() if isinstance(df, pd.DataFrame)}
    if frames:
        ref_load.write_rejected(frames, path, storage_options)
    fs, root = io.filesystem(path, storage_options)
    fs.makedirs(root, exist_ok=True)
    local = "://" not in path or path.startswith("file://")
    for t, df in rejected.items():
        if isinstance(df, pd.DataFrame):
            continue
        target = f"{root.rstrip('/')}/{t}.parquet"
        if local:
            df.write.mode("overwrite").parquet(target)
        else:  # no hadoop-aws connector here: go through the driver and fsspec
            ref_load.write_rejected({t: spark_to_pandas(df)}, path, storage_options)


def _load_on_driver(spark: SparkSession, path: str, *, on_invalid: str,
                    rejected_path: str | None, storage_options: dict[str, Any] | None,
                    ) -> tuple[Tables, ValidationReport, dict[str, Any]]:
    """Remote datasets: read with fsspec/pyarrow and validate with pandas on the driver."""
    tables, report, rejected = ref_load.load(path, on_invalid=on_invalid,
                                             rejected_path=rejected_path,
                                             storage_options=storage_options)
    frames = {t: to_spark(spark, t, df) for t, df in tables.items()}
    return Tables(**align_empty_ids(frames, report.rows)), report, rejected


#: The big tables: at persist, spread over whole waves of tasks (see :func:`balanced`).
SPREAD_TABLES = ("locations", "interactions")


def balanced(df: DataFrame, cores: int) -> DataFrame:
    """``df`` over a multiple of ``cores`` partitions, hashed by user, when its own
    partitions (one per file split) would leave cores idle in the last wave of tasks
    (more than 10 % of the slots; e.g. 3 splits on 2 cores: every scan runs a third
    task alone). Otherwise ``df`` itself (no shuffle)."""
    import math

    p = df.rdd.getNumPartitions()
    target = cores * math.ceil(p / cores)
    if target == p or (target - p) / target <= 0.1:
        return df
    # by the id itself: the per-user windows and groupings (attribution, profiles) then
    # need no shuffle of their own
    return df.repartition(target, "user_id")


def persist(tables: Tables) -> tuple[Tables, list[DataFrame]]:
    """Cache every table (memory, spilling to disk) and materialise it with a count.

    The locations are cached with two more columns (:func:`~adanalytics.engines.spark.
    visits.with_keys`): each record's grid cell for the visit radius and its user id's
    hash, which the visit pairs would otherwise compute for every record at every query;
    the table returned is their projection on the loaded columns. The big tables are
    first spread over whole waves of the cluster's cores (:func:`balanced`): on
    ``local[2]``, the medium preset's 3 location splits become 4 partitions (its
    interactions, 2 splits, stay as they are); visits then take about 15 % less.

    Returns the tables and the cached frames (to unpersist on close).
    """
    import time

    from pyspark import StorageLevel

    from adanalytics.engines.spark import visits as _visits

    out = {}
    cached_frames = []
    for name, df in tables.items():
        sc = df.sparkSession.sparkContext
        columns = df.columns
        if name == "locations":
            df = _visits.with_keys(df)
        spread = balanced(df, sc.defaultParallelism) if name in SPREAD_TABLES else df
        by_user, df = spread is not df, spread
        start = time.perf_counter()
        sc.setJobDescription(f"adanalytics: persist {name}")
        try:
            cached = df.persist(StorageLevel.MEMORY_AND_DISK)
            n = cached.count()
        finally:
            sc.setJobDescription(None)  # type: ignore[arg-type]
        log.info("persisted %s: %s rows in %.1f s", name, f"{n:,}", time.perf_counter() - start)
        cached_frames.append(cached)
        out[name] = (_visits.register_keyed(cached, columns, by_user=by_user)
                     if name == "locations" else cached)
    return Tables(**out), cached_frames
