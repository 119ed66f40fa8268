"""Question 3: share of visits that followed an interaction with one of the
establishment's ads within the window (SPEC §3.3; inclusive at both ends).

An as-of join per (user, establishment) written as one window: visits and interactions
("touches") are unioned, ordered by time with touches first on equal timestamps, and
each visit sees the running maximum of the touch times before it - the latest earlier
touch. A visit is attributed when ``ts - last_touch <= window``. One shuffle, no
pairwise comparison of visits with interactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.joins import sort_output, with_ad_columns
from adanalytics.engines.spark.visits import visit_pairs
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame


def interaction_touches(interactions: DataFrame, ads: DataFrame) -> DataFrame:
    """Every interaction as (user_id, establishment_id, ts) of the ad's establishment."""
    return with_ad_columns(interactions.select("user_id", "ad_id", "ts"), ads,
                           "establishment_id").select("user_id", "establishment_id", "ts")


def window_us(window: pd.Timedelta) -> int:
    """The window in whole microseconds (instants are microseconds in Spark:
    ``t - ti <= w`` over multiples of 1 us is ``t - ti <= floor(w)``)."""
    return int(window.value) // 1000


def attributed_pairs(pairs: DataFrame, touches: DataFrame, window: pd.Timedelta) -> DataFrame:
    """Visit pairs (user_id, establishment_id, ts) with a boolean ``attributed``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    visits = pairs.select("user_id", "establishment_id", F.unix_micros("ts").alias("_t"),
                          F.lit(1).alias("_visit"), "ts")
    touch = touches.select("user_id", "establishment_id", F.unix_micros("ts").alias("_t"),
                           F.lit(0).alias("_visit"), "ts")
    w = (Window.partitionBy("user_id", "establishment_id").orderBy("_t", "_visit")
         .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    last_touch = F.max(F.when(F.col("_visit") == 0, F.col("_t"))).over(w)
    both = visits.unionByName(touch).withColumn("_last", last_touch)
    ok = F.col("_last").isNotNull() & (F.col("_t") - F.col("_last") <= F.lit(window_us(window)))
    return (both.where(F.col("_visit") == 1)
            .select("user_id", "establishment_id", "ts", F.coalesce(ok, F.lit(False)).alias("attributed")))


def attribution(locations: DataFrame, establishments: DataFrame, interactions: DataFrame,
                ads: DataFrame, *, by: str, tz: str, window: pd.Timedelta,
                radius_m: float) -> DataFrame:
    """Visits, attributed visits and their ratio per establishment [and local month]."""
    from pyspark.sql import functions as F

    keys = output_keys("attribution", by)
    pairs = visit_pairs(locations, establishments, radius_m)
    flagged = attributed_pairs(pairs, interaction_touches(interactions, ads), window)
    if by == "month":
        flagged = flagged.withColumn("month", tb.month(tb.local_us(F.col("ts"), tz)))
    out = flagged.groupBy(*keys).agg(
        F.count(F.lit(1)).cast("long").alias("visits"),
        F.sum(F.col("attributed").cast("long")).cast("long").alias("attributed_visits"),
    ).withColumn("ratio", F.col("attributed_visits").cast("double") / F.col("visits").cast("double"))
    return sort_output(out, keys, output_columns("attribution", by))
