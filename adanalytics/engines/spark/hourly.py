"""Question 4: interactions per ad category for every local hour (SPEC §3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.ctr import view_click_sums
from adanalytics.engines.spark.joins import sort_output, with_ad_columns
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def category_hourly(interactions: DataFrame, ads: DataFrame, *, by: str, tz: str) -> DataFrame:
    """Interactions, views and clicks per ad category and local hour, zeros included:
    every category of ``ads`` x 24 hours [x every month with an interaction]."""
    from pyspark.sql import functions as F

    keys = output_keys("category_hourly", by)
    df = with_ad_columns(interactions.select("ad_id", "action", "ts"), ads, "category")
    local = tb.local_us(F.col("ts"), tz)
    df = df.withColumn("hour", tb.hour(local))
    if by == "month":
        df = df.withColumn("month", tb.month(local))
    counts = df.groupBy(*keys).agg(*view_click_sums())
    spark = interactions.sparkSession
    grid = ads.select("category").where(F.col("category").isNotNull()).distinct()
    if by == "month":
        grid = grid.crossJoin(counts.select("month").distinct())
    grid = grid.crossJoin(spark.range(24).select(F.col("id").alias("hour")))
    out = grid.join(counts, on=keys, how="left").select(
        *keys,
        F.coalesce(F.col("views"), F.lit(0)).cast("long").alias("views"),
        F.coalesce(F.col("clicks"), F.lit(0)).cast("long").alias("clicks"),
    ).withColumn("interactions", F.col("views") + F.col("clicks"))
    return sort_output(out, keys, output_columns("category_hourly", by))
