"""Question 1: click-through rate per campaign (SPEC §3.1), as Spark aggregates.

The Wilson interval repeats :func:`adanalytics.semantics.wilson_interval` operation by
operation (so the doubles agree with numpy's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.joins import sort_output, with_ad_columns
from adanalytics.semantics import WILSON_Z, output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def view_click_sums() -> list[Column]:
    """views = rows that are not clicks, clicks = click rows (long sums)."""
    from pyspark.sql import functions as F

    click = (F.col("action") == "click").cast("long")
    return [F.sum(F.lit(1) - click).alias("views"), F.sum(click).alias("clicks")]


def wilson(clicks: Column, views: Column, z: float = WILSON_Z) -> tuple[Column, Column]:
    """Wilson score interval of clicks / views (null where views = 0; p clamped to 1)."""
    from pyspark.sql import functions as F

    n = views.cast("double")
    c = clicks.cast("double")
    z2 = z * z
    p = F.least(c / n, F.lit(1.0))
    denom = F.lit(1.0) + F.lit(z2) / n
    centre = (p + F.lit(z2) / (F.lit(2.0) * n)) / denom
    half = F.lit(z) * F.sqrt(p * (F.lit(1.0) - p) / n + F.lit(z2) / (F.lit(4.0) * n * n)) / denom
    ok = n > 0
    return F.when(ok, centre - half), F.when(ok, centre + half)


def ctr(interactions: DataFrame, ads: DataFrame, *, by: str, tz: str) -> DataFrame:
    """Views, clicks, CTR and its Wilson interval per campaign [and local month]."""
    from pyspark.sql import functions as F

    keys = output_keys("ctr", by)
    df = with_ad_columns(interactions.select("ad_id", "action", "ts"), ads, "campaign_id")
    if by == "month":
        df = df.withColumn("month", tb.month(tb.local_us(F.col("ts"), tz)))
    counts = df.groupBy(*keys).agg(*view_click_sums())
    views, clicks = F.col("views"), F.col("clicks")
    low, high = wilson(clicks, views)
    out = counts.select(
        *keys, views, clicks,
        F.when(views > 0, clicks.cast("double") / views.cast("double")).alias("ctr"),
        low.alias("ctr_low"), high.alias("ctr_high"),
    )
    return sort_output(out, keys, output_columns("ctr", by))
