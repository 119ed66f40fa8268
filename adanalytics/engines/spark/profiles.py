"""Questions 5 and 6: per-user category profiles by period of day / weekday, and each
user's preferred category (SPEC §3.5-3.6): share by a window sum per (user, slot); the
preferred category by ``row_number`` over (count desc, category asc) - the tie-break of
``semantics.TIE_BREAK``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.joins import sort_output, with_ad_columns
from adanalytics.engines.spark.visits import visit_pairs
from adanalytics.semantics import output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def interaction_profile_counts(interactions: DataFrame, ads: DataFrame, *, tz: str) -> DataFrame:
    """Interactions per (user, period, ad category)."""
    from pyspark.sql import functions as F

    df = with_ad_columns(interactions.select("user_id", "ad_id", "ts"), ads, "category")
    df = df.select("user_id", tb.period(tb.hour(tb.local_us(F.col("ts"), tz))).alias("period"),
                   "category")
    return _count(df, ["user_id", "period", "category"], "interactions")


def visit_profile_counts(pairs: DataFrame, *, tz: str) -> DataFrame:
    """Visits per (user, weekday, establishment category) from visit pairs."""
    from pyspark.sql import functions as F

    df = pairs.select("user_id", tb.weekday(tb.local_us(F.col("ts"), tz)).alias("weekday"),
                      "category")
    return _count(df, ["user_id", "weekday", "category"], "visits")


def _count(df: DataFrame, keys: list[str], name: str) -> DataFrame:
    from pyspark.sql import functions as F

    # the reference groups with pandas' default dropna: rows without a category drop out
    return (df.where(F.col("category").isNotNull())
            .groupBy(*keys).agg(F.count(F.lit(1)).cast("long").alias(name)))


def with_share(counts: DataFrame, analysis: str) -> DataFrame:
    """Add ``share`` = count / the user's total in the same slot (unsorted)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = output_columns(analysis)
    count_col = cols[3]
    total = F.sum(count_col).over(Window.partitionBy(*cols[:2]))
    return counts.withColumn("share", F.col(count_col).cast("double") / total.cast("double"))


def preferred(profile: DataFrame, analysis: str) -> DataFrame:
    """One row per (user, slot): the category with most events; ties -> smallest category."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = output_columns(analysis)
    w = Window.partitionBy(*cols[:2]).orderBy(F.col(cols[3]).desc(), F.col("category").asc())
    best = profile.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") == 1)
    return sort_output(best, output_keys(analysis), cols)


def interaction_profile(interactions: DataFrame, ads: DataFrame, *, tz: str) -> DataFrame:
    """Per user and period of the day: interactions and share per ad category."""
    prof = with_share(interaction_profile_counts(interactions, ads, tz=tz), "interaction_profile")
    return sort_output(prof, output_keys("interaction_profile"), output_columns("interaction_profile"))


def preferred_ad_category(interactions: DataFrame, ads: DataFrame, *, tz: str) -> DataFrame:
    """Per user and period of the day: the preferred ad category."""
    prof = with_share(interaction_profile_counts(interactions, ads, tz=tz), "interaction_profile")
    return preferred(prof, "preferred_ad_category")


def visit_profile(locations: DataFrame, establishments: DataFrame, *, tz: str,
                  radius_m: float) -> DataFrame:
    """Per user and weekday: visits and share per establishment category."""
    pairs = visit_pairs(locations, establishments, radius_m)
    prof = with_share(visit_profile_counts(pairs, tz=tz), "visit_profile")
    return sort_output(prof, output_keys("visit_profile"), output_columns("visit_profile"))


def preferred_establishment_category(locations: DataFrame, establishments: DataFrame, *,
                                     tz: str, radius_m: float) -> DataFrame:
    """Per user and weekday: the preferred establishment category."""
    pairs = visit_pairs(locations, establishments, radius_m)
    prof = with_share(visit_profile_counts(pairs, tz=tz), "visit_profile")
    return preferred(prof, "preferred_establishment_category")
