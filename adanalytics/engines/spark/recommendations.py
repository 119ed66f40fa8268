"""Question 7 (batch form): ad suggestions to users approaching an establishment
(SPEC §3.7), the same rule as :func:`adanalytics.engines.pandas.recommendations.recommend`
with an empty state.

In the JVM: each user's previous event by ``lag`` over (ts, lat, lon); the gap rule;
candidates by the broadcast cell-key join at the approach radius; the closing rule; the
best active ad by a broadcast join with the ads ranked by historical CTR. The cooldown
("only emitted suggestions count") is a greedy scan in time order - sequential per
(user, establishment) - so it runs as a grouped pandas function on the *approaches
only* (a tiny fraction of the events), reusing the reference kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adanalytics.engines.base import RecommendParams
from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.collect import small_to_pandas, spark_to_pandas, to_spark_frame
from adanalytics.engines.spark.geo import haversine
from adanalytics.engines.spark.joins import sort_output
from adanalytics.engines.spark.visits import near_pairs
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_OUT = output_columns("recommendations")


def ranked_ads(interactions: DataFrame, ads: DataFrame, campaigns: DataFrame) -> DataFrame:
    """Every ad with its campaign's dates and its rank (highest historical CTR first, ads
    without views last, ties by smallest ad_id): the reference ranking, run on the driver
    over one row per ad (views/clicks are summed in Spark)."""
    from adanalytics.engines.pandas.recommendations import ranked_ads as ranked_reference
    from adanalytics.engines.spark.ctr import view_click_sums

    counts = spark_to_pandas(interactions.groupBy("ad_id").agg(*view_click_sums()))
    ads_pd = small_to_pandas(ads, ["ad_id", "establishment_id", "campaign_id"])
    camp = small_to_pandas(campaigns, ["campaign_id", "start_date", "end_date"])
    camp = camp.assign(start_date=_days(camp["start_date"]), end_date=_days(camp["end_date"]))
    ranked = ranked_reference(ads_pd, camp, counts)
    return to_spark_frame(interactions.sparkSession, ranked)


def _days(dates: pd.Series) -> np.ndarray:
    """Calendar dates as days since 1970-01-01 (int64), comparable with ``local_days``."""
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


def approaches(locations: DataFrame, establishments: DataFrame, *, tz: str,
               params: RecommendParams) -> DataFrame:
    """Every (event, establishment) meeting the approach rule, before the ad and cooldown
    rules. Columns: _cand (unique id), user_id, establishment_id, ts, _t (epoch us),
    lat, lon, distance_m, _day (local date as days since the epoch)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ev = locations.select("user_id", "lat", "lon", "ts", F.unix_micros("ts").alias("_t"))
    w = Window.partitionBy("user_id").orderBy("_t", "lat", "lon")
    ev = ev.select("*", F.lag("_t").over(w).alias("_pt"), F.lag("lat").over(w).alias("_plat"),
                   F.lag("lon").over(w).alias("_plon"))
    gap_us = int(params.max_gap.value) // 1000  # t - t' <= gap over whole microseconds
    ev = ev.where(F.col("_pt").isNotNull() & (F.col("_t") - F.col("_pt") <= F.lit(gap_us)))
    near = near_pairs(ev, establishments, params.approach_radius_m,
                      keep=("user_id", "ts", "_t", "_plat", "_plon"),
                      place_columns=("establishment_id",))
    d_prev = haversine(F.col("_plat"), F.col("_plon"), F.col("_elat"), F.col("_elon"))
    closing = (d_prev - F.col("distance_m")) >= F.lit(float(params.min_closing_m))
    return near.where(closing).select(
        F.monotonically_increasing_id().alias("_cand"), "user_id", "establishment_id", "ts",
        "_t", "lat", "lon", "distance_m",
        tb.local_days(tb.local_us(F.col("ts"), tz)).alias("_day"))


def cooldown_kernel(cooldown_ns: int):  # type: ignore[no-untyped-def]
    """The grouped function: one (user, establishment)'s approaches -> emitted rows."""

    def apply(pdf: pd.DataFrame) -> pd.DataFrame:
        # reference order: time, then the event order (lat, lon) for equal times
        a = pdf.sort_values(["_t", "lat", "lon"], kind="mergesort")
        t = a["_t"].to_numpy(np.int64) * 1000
        keep = np.zeros(len(a), dtype=bool)
        last = None
        for i in range(len(a)):
            if last is None or t[i] - last >= cooldown_ns:
                keep[i] = True
                last = t[i]
        return a.loc[keep, ["user_id", "establishment_id", "ad_id", "_t", "distance_m"]]

    return apply


def recommendations(locations: DataFrame, establishments: DataFrame, ads: DataFrame,
                    campaigns: DataFrame, interactions: DataFrame, *, tz: str,
                    params: RecommendParams) -> DataFrame:
    """Every suggestion the streaming job would emit for these events, in key order."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cand = approaches(locations, establishments, tz=tz, params=params)
    ranked = ranked_ads(interactions, ads, campaigns)
    active = cand.join(F.broadcast(ranked), on="establishment_id", how="inner").where(
        (F.col("start_date") <= F.col("_day")) & (F.col("_day") <= F.col("end_date")))
    best = active.groupBy("_cand", "user_id", "establishment_id", "_t", "lat", "lon",
                          "distance_m").agg(F.min_by("ad_id", "rank").alias("ad_id"))
    fields = {f.name: f.dataType for f in best.schema.fields}
    out_schema = T.StructType([
        T.StructField("user_id", fields["user_id"]),
        T.StructField("establishment_id", fields["establishment_id"]),
        T.StructField("ad_id", fields["ad_id"]),
        T.StructField("_t", T.LongType()),
        T.StructField("distance_m", T.DoubleType()),
    ])
    emitted = best.groupBy("user_id", "establishment_id").applyInPandas(
        cooldown_kernel(int(params.cooldown.value)), schema=out_schema)
    out = emitted.withColumn("ts", F.timestamp_micros("_t"))
    return sort_output(out, output_keys("recommendations"), _OUT)
