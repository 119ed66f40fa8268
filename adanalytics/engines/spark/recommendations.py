"""Question 7 (batch form): ad suggestions to users approaching an establishment
(SPEC §3.7), the same rule as :func:`adanalytics.engines.pandas.recommendations.recommend`
with an empty state.

In the JVM: each user's previous event by ``lag`` over (ts, lat, lon); the gap rule;
candidates by the broadcast cell-key join at the approach radius; the closing rule; the
best active ad by a broadcast join with the ads ranked by historical CTR. The cooldown
("only emitted suggestions count") is a greedy scan in time order - sequential per
(user, establishment) - so the *approaches only* (a tiny fraction of the events) are
partitioned by (user, establishment), sorted, and scanned by the reference kernel
(:func:`~adanalytics.engines.pandas.recommendations.cooldown_mask`) one Arrow batch at a
time (``mapInPandas``: no Python call per group).
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


def cooldown_partitions(cooldown_ns: int):  # type: ignore[no-untyped-def]
    """The ``mapInPandas`` function over partitions sorted by (user, establishment, time):
    the reference greedy cooldown (:func:`cooldown_mask`), one vectorised call per Arrow
    batch; a group cut by a batch boundary continues with its last emitted time."""
    from adanalytics.engines.pandas.recommendations import cooldown_mask

    lim = np.iinfo(np.int64).min

    def apply(batches):  # type: ignore[no-untyped-def]
        carry: tuple | None = None  # (user, establishment, last emitted t in ns)
        for a in batches:
            if a.empty:
                continue
            u = a["user_id"].to_numpy()
            e = a["establishment_id"].to_numpy()
            t = a["_t"].to_numpy(np.int64) * 1000
            starts = np.ones(len(a), dtype=bool)
            starts[1:] = (u[1:] != u[:-1]) | (e[1:] != e[:-1])
            before = None
            if carry is not None and carry[0] == u[0] and carry[1] == e[0]:
                before = np.full(len(a), lim, dtype=np.int64)
                before[0] = carry[2]
            keep = cooldown_mask(starts, t, cooldown_ns, before)
            out = a.loc[keep, ["user_id", "establishment_id", "ad_id", "_t", "distance_m"]]
            # the last group's last emitted time (or the carried one if none emitted)
            g0 = int(np.flatnonzero(starts)[-1])
            kept = np.flatnonzero(keep[g0:])
            if len(kept):
                carry = (u[-1], e[-1], int(t[g0 + kept[-1]]))
            elif not (carry is not None and carry[0] == u[-1] and carry[1] == e[-1]):
                carry = None
            yield out

    return apply


def recommendations(locations: DataFrame, establishments: DataFrame, ads: DataFrame,
                    campaigns: DataFrame, interactions: DataFrame, *, tz: str,
                    params: RecommendParams) -> DataFrame:
    """Every suggestion the streaming job would emit for these events, in key order."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # only establishments with an ad can be suggested: the others are not searched
    advertised = establishments.join(F.broadcast(ads.select("establishment_id").distinct()),
                                     on="establishment_id", how="left_semi")
    cand = approaches(locations, advertised, tz=tz, params=params)
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
    emitted = (best.repartition("user_id", "establishment_id")
               .sortWithinPartitions("user_id", "establishment_id", "_t", "lat", "lon")
               .mapInPandas(cooldown_partitions(int(params.cooldown.value)), schema=out_schema))
    out = emitted.withColumn("ts", F.timestamp_micros("_t"))
    return sort_output(out, output_keys("recommendations"), _OUT)
