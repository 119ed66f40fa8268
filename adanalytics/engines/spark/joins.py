"""Joins with the small dimension tables (broadcast hash joins) and the output order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.semantics import PERIOD_NAMES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def with_ad_columns(interactions: DataFrame, ads: DataFrame, *columns: str) -> DataFrame:
    """Interactions plus ``columns`` of their ad (broadcast join; every ad_id is valid)."""
    from pyspark.sql import functions as F

    dim = ads.select("ad_id", *columns)
    return interactions.join(F.broadcast(dim), on="ad_id", how="inner")


def sort_output(df: DataFrame, keys: list[str], columns: list[str]) -> DataFrame:
    """``columns`` of ``df`` in key order (periods in day order), as one sorted partition.

    Results are aggregates (small next to the input), so one partition sorted locally
    is cheaper than a range-partitioned global sort and collects in order.
    """
    from pyspark.sql import functions as F

    order = []
    for k in keys:
        if k == "period":
            rank = None
            for i, name in enumerate(PERIOD_NAMES):
                cond = F.col("period") == name
                rank = F.when(cond, i) if rank is None else rank.when(cond, i)
            df = df.withColumn("_period_rank", rank)
            order.append(F.col("_period_rank"))
        else:
            order.append(F.col(k))
    return df.repartition(1).sortWithinPartitions(*order).select(*columns)
