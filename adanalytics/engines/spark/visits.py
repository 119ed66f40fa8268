"""Question 2: visits to establishments (SPEC §3.2) - and the visit pairs questions 3 and
6 build on - as a broadcast equi-join on grid cell keys.

Each establishment is replicated (on the driver, :func:`adanalytics.geo.replicate_points`)
into every cell its disc can reach; that small table is broadcast, each location record
computes its own cell key in the JVM (:func:`adanalytics.engines.spark.geo.cell_key`),
and the hash join yields the few candidates on which the exact haversine rule
(``distance < radius``) decides. No record is compared with every establishment.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.geo import cell_key, haversine, place_cells
from adanalytics.engines.spark.joins import sort_output
from adanalytics.geo import GridSpec, grid_spec
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def establishments_pandas(establishments: DataFrame):  # type: ignore[no-untyped-def]
    """The (small) establishments table on the driver, for the grid replication."""
    from adanalytics.engines.spark.collect import small_to_pandas

    return small_to_pandas(establishments, ["establishment_id", "category", "lat", "lon"])


#: Replicated cells per establishments frame and (radius, columns): built once per dataset.
_CELLS: weakref.WeakKeyDictionary[Any, dict[tuple[float, tuple[str, ...]], DataFrame]] = (
    weakref.WeakKeyDictionary())


def _place_cells(establishments: DataFrame, spec: GridSpec,
                 columns: tuple[str, ...]) -> DataFrame:
    """The establishments replicated into their grid cells (memoised per frame)."""
    per_frame = _CELLS.setdefault(establishments, {})
    key = (spec.radius_m, columns)
    if key not in per_frame:
        per_frame[key] = place_cells(establishments.sparkSession,
                                     establishments_pandas(establishments), spec, columns)
    return per_frame[key]


def near_pairs(records: DataFrame, establishments: DataFrame, radius_m: float,
               *, keep: tuple[str, ...] = ("user_id", "ts"),
               place_columns: tuple[str, ...] = ("establishment_id", "category")) -> DataFrame:
    """Every (record, establishment) pair closer than ``radius_m`` (strictly).

    Columns: ``keep`` columns of the records, ``place_columns`` of the establishment,
    ``_elat``/``_elon`` (its position) and ``distance_m``.
    """
    from pyspark.sql import functions as F

    spec = grid_spec(float(radius_m))
    cells = _place_cells(establishments, spec, place_columns)
    rec = records.select(*keep, "lat", "lon",
                         cell_key(spec, F.col("lat"), F.col("lon")).alias("_cell"))
    joined = rec.join(F.broadcast(cells), on="_cell", how="inner")
    dist = haversine(F.col("lat"), F.col("lon"), F.col("_elat"), F.col("_elon"))
    return (joined.select(*keep, "lat", "lon", *place_columns, "_elat", "_elon",
                          dist.alias("distance_m"))
            .where(F.col("distance_m") < F.lit(float(radius_m))))


def visit_pairs(locations: DataFrame, establishments: DataFrame, radius_m: float) -> DataFrame:
    """Every (location record, establishment) pair closer than the radius.

    Columns: user_id, ts, establishment_id, category (the establishment's), distance_m.
    """
    return near_pairs(locations, establishments, radius_m).select(
        "user_id", "ts", "establishment_id", "category", "distance_m")


def visits(locations: DataFrame, establishments: DataFrame, *, by: str, tz: str,
           radius_m: float) -> DataFrame:
    """Visits and distinct visitors of every establishment with at least one visit."""
    from pyspark.sql import functions as F

    keys = output_keys("visits", by)
    pairs = visit_pairs(locations, establishments, radius_m)
    if by == "month":
        pairs = pairs.withColumn("month", tb.month(tb.local_us(F.col("ts"), tz)))
    per_user = pairs.groupBy(*keys, "user_id").agg(F.count(F.lit(1)).alias("n"))
    out = per_user.groupBy(*keys).agg(
        F.sum("n").cast("long").alias("visits"), F.count(F.lit(1)).cast("long").alias("visitors"))
    return sort_output(out, keys, output_columns("visits", by))
