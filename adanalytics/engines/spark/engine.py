"""The Spark engine: every analysis in the JVM, on a standalone cluster or embedded."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from adanalytics.engines.base import RecommendParams, Tables
from adanalytics.engines.spark import attribution as _attr
from adanalytics.engines.spark import ctr as _ctr
from adanalytics.engines.spark import hourly as _hourly
from adanalytics.engines.spark import load as _load
from adanalytics.engines.spark import profiles as _prof
from adanalytics.engines.spark import recommendations as _rec
from adanalytics.engines.spark import visits as _visits
from adanalytics.engines.spark.collect import spark_to_pandas
from adanalytics.engines.spark.session import get_session

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from adanalytics.schema import ValidationReport


class SparkEngine:
    """Runs every analysis as Spark SQL on the process-wide SparkSession.

    Parameters
    ----------
    master:
        ``spark://host:7077`` of a standalone master (default ``$SPARK_MASTER``), else an
        embedded ``local[2]`` session.
    app_name:
        Application name shown by the master and the Spark UI.
    conf:
        Extra Spark configuration, e.g. ``{"spark.sql.shuffle.partitions": 64}``.

    Notes
    -----
    The session is shared by every dataset of the process (one JVM driver per process).
    Each analysis sets the session time zone to its dataset's ``tz`` (so timestamps
    display in local time); the calendar buckets themselves carry the zone explicitly
    and never depend on the session setting. :meth:`close` releases this engine's
    cached tables but keeps the shared session (see
    :func:`adanalytics.engines.spark.session.stop_session`).
    """

    name = "spark"

    def __init__(self, master: str | None = None, app_name: str = "adanalytics",
                 conf: dict[str, Any] | None = None) -> None:
        self.spark = get_session(master, app_name, conf)
        self.rejected: dict[str, Any] = {}
        self._cached: list[DataFrame] = []

    def __repr__(self) -> str:
        return f"<SparkEngine master={self.spark.sparkContext.master!r}>"

    # --- loading ------------------------------------------------------------------------
    def load(self, path: str, *, tz: str, on_invalid: str, rejected_path: str | None,
             storage_options: dict[str, Any] | None) -> tuple[Tables, ValidationReport]:
        tables, report, self.rejected = _load.load(
            self.spark, path, on_invalid=on_invalid, rejected_path=rejected_path,
            storage_options=storage_options)
        return tables, report

    def from_frames(self, data: dict[str, Any], *, on_invalid: str,
                    rejected_path: str | None = None) -> tuple[Tables, ValidationReport]:
        """Tables from in-memory data (dicts of columns or pandas DataFrames)."""
        tables, report, self.rejected = _load.from_frames(
            self.spark, data, on_invalid=on_invalid, rejected_path=rejected_path)
        return tables, report

    def persist(self, tables: Tables) -> Tables:
        """Cache the tables in executor memory (spilling to disk) and materialise them."""
        out, cached = _load.persist(tables)
        self._cached.extend(cached)
        _visits.check_user_hash(out.locations)
        return out

    def _tz(self, tz: str) -> None:
        self.spark.conf.set("spark.sql.session.timeZone", tz)

    # --- the analyses of SPEC §3 -----------------------------------------------------------
    def ctr(self, t: Tables, *, by: str, tz: str) -> DataFrame:
        self._tz(tz)
        return _ctr.ctr(t.interactions, t.ads, by=by, tz=tz)

    def visits(self, t: Tables, *, by: str, tz: str, radius_m: float) -> DataFrame:
        self._tz(tz)
        return _visits.visits(t.locations, t.establishments, by=by, tz=tz, radius_m=radius_m)

    def attribution(self, t: Tables, *, by: str, tz: str, window: pd.Timedelta,
                    radius_m: float) -> DataFrame:
        self._tz(tz)
        return _attr.attribution(t.locations, t.establishments, t.interactions, t.ads,
                                 by=by, tz=tz, window=window, radius_m=radius_m)

    def category_hourly(self, t: Tables, *, by: str, tz: str) -> DataFrame:
        self._tz(tz)
        return _hourly.category_hourly(t.interactions, t.ads, by=by, tz=tz)

    def interaction_profile(self, t: Tables, *, tz: str) -> DataFrame:
        self._tz(tz)
        return _prof.interaction_profile(t.interactions, t.ads, tz=tz)

    def preferred_ad_category(self, t: Tables, *, tz: str) -> DataFrame:
        self._tz(tz)
        return _prof.preferred_ad_category(t.interactions, t.ads, tz=tz)

    def visit_profile(self, t: Tables, *, tz: str, radius_m: float) -> DataFrame:
        self._tz(tz)
        return _prof.visit_profile(t.locations, t.establishments, tz=tz, radius_m=radius_m)

    def preferred_establishment_category(self, t: Tables, *, tz: str,
                                         radius_m: float) -> DataFrame:
        self._tz(tz)
        return _prof.preferred_establishment_category(t.locations, t.establishments, tz=tz,
                                                      radius_m=radius_m)

    def recommendations(self, t: Tables, *, tz: str, params: RecommendParams) -> DataFrame:
        self._tz(tz)
        return _rec.recommendations(t.locations, t.establishments, t.ads, t.campaigns,
                                    t.interactions, tz=tz, params=params)

    # --- results and lifetime ------------------------------------------------------------
    def to_pandas(self, frame: Any) -> pd.DataFrame:
        return spark_to_pandas(frame)

    def close(self) -> None:
        """Drop this engine's cached tables (the shared session keeps running)."""
        for df in self._cached:
            with contextlib.suppress(Exception):  # the session may already be stopped
                df.unpersist()
        self._cached.clear()
