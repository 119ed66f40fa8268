"""The public entry point: a validated dataset bound to an engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from adanalytics import semantics as sem
from adanalytics.engines import get_engine
from adanalytics.engines.base import RecommendParams

if TYPE_CHECKING:
    from adanalytics.engines.base import Engine, Tables
    from adanalytics.schema import ValidationReport

ON_INVALID = ("raise", "quarantine")

#: Analyses a Dataset answers, in the order of the seven questions (CLI names use dashes).
ANALYSES: tuple[str, ...] = (
    "ctr", "visits", "attribution", "category_hourly", "interaction_profile",
    "preferred_ad_category", "visit_profile", "preferred_establishment_category",
    "recommendations",
)
#: Analyses that take ``by``.
BY_ANALYSES: frozenset[str] = frozenset({"ctr", "visits", "attribution", "category_hourly"})


def check_tz(tz: str) -> str:
    """Validate an IANA time-zone name."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        msg = f"tz must be an IANA time-zone name such as 'America/Recife', got {tz!r}"
        raise ValueError(msg) from exc
    return tz


def _check_on_invalid(on_invalid: str) -> str:
    if on_invalid not in ON_INVALID:
        msg = f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}"
        raise ValueError(msg)
    return on_invalid


class Dataset:
    """The five validated tables of a dataset, bound to an engine.

    Every analysis returns the engine's native DataFrame (pandas, Dask or Spark); use
    :func:`adanalytics.to_pandas` to collect it.
    """

    def __init__(self, engine: Engine, tables: Tables, validation: ValidationReport,
                 tz: str, source: str) -> None:
        self.engine = engine
        self.tables = tables
        self.validation = validation
        self.tz = tz
        self.source = source

    def __repr__(self) -> str:
        rows = ", ".join(f"{t}={n:,}" for t, n in self.validation.rows.items())
        return f"<Dataset {self.source!r} engine={self.engine.name} tz={self.tz} ({rows})>"

    @property
    def rejected(self) -> dict[str, Any]:
        """Rejected rows per table (quarantine mode), with the rule each broke."""
        return dict(getattr(self.engine, "rejected", {}) or {})

    def persist(self) -> Dataset:
        """Load the tables into (cluster) memory; later analyses read them from there."""
        self.tables = self.engine.persist(self.tables)
        return self

    # --- the analyses of SPEC §3 -------------------------------------------------------
    def ctr(self, by: str = "total") -> Any:
        """Q1: views, clicks, CTR and its Wilson 95 % interval per campaign [and month]."""
        return self.engine.ctr(self.tables, by=sem.check_by(by), tz=self.tz)

    def visits(self, by: str = "total", radius_m: float = sem.VISIT_RADIUS_M) -> Any:
        """Q2: visits (records closer than ``radius_m``) and visitors per establishment."""
        return self.engine.visits(self.tables, by=sem.check_by(by), tz=self.tz,
                                  radius_m=sem.check_radius(radius_m))

    def attribution(self, by: str = "total", window: str | pd.Timedelta = sem.ATTRIBUTION_WINDOW,
                    radius_m: float = sem.VISIT_RADIUS_M) -> Any:
        """Q3: share of visits that followed an interaction with the establishment's ads."""
        return self.engine.attribution(
            self.tables, by=sem.check_by(by), tz=self.tz,
            window=sem.to_timedelta(window, "window"), radius_m=sem.check_radius(radius_m),
        )

    def category_hourly(self, by: str = "total") -> Any:
        """Q4: interactions per ad category and local hour (complete 24-hour grid)."""
        return self.engine.category_hourly(self.tables, by=sem.check_by(by), tz=self.tz)

    def interaction_profile(self) -> Any:
        """Q5: per user and period of day, interactions and share per ad category."""
        return self.engine.interaction_profile(self.tables, tz=self.tz)

    def preferred_ad_category(self) -> Any:
        """Q5: per user and period of day, the preferred ad category."""
        return self.engine.preferred_ad_category(self.tables, tz=self.tz)

    def visit_profile(self, radius_m: float = sem.VISIT_RADIUS_M) -> Any:
        """Q6: per user and weekday, visits and share per establishment category."""
        return self.engine.visit_profile(self.tables, tz=self.tz,
                                         radius_m=sem.check_radius(radius_m))

    def preferred_establishment_category(self, radius_m: float = sem.VISIT_RADIUS_M) -> Any:
        """Q6: per user and weekday, the preferred establishment category."""
        return self.engine.preferred_establishment_category(
            self.tables, tz=self.tz, radius_m=sem.check_radius(radius_m))

    def recommendations(self, approach_radius_m: float = sem.APPROACH_RADIUS_M,
                        max_gap: str | pd.Timedelta = sem.MAX_GAP,
                        min_closing_m: float = sem.MIN_CLOSING_M,
                        cooldown: str | pd.Timedelta = sem.COOLDOWN) -> Any:
        """Q7 (batch form of the real-time job): suggestions to approaching users."""
        if not (float(min_closing_m) >= 0):
            msg = f"min_closing_m must be >= 0 metres, got {min_closing_m!r}"
            raise ValueError(msg)
        params = RecommendParams(
            approach_radius_m=sem.check_radius(approach_radius_m, "approach_radius_m"),
            max_gap=sem.to_timedelta(max_gap, "max_gap"),
            min_closing_m=float(min_closing_m),
            cooldown=sem.to_timedelta(cooldown, "cooldown"),
        )
        return self.engine.recommendations(self.tables, tz=self.tz, params=params)

    def run(self, analysis: str, by: str = "total") -> Any:
        """Run an analysis by name (``by`` is ignored by analyses without buckets)."""
        name = analysis.replace("-", "_")
        if name not in ANALYSES:
            msg = f"analysis must be one of {', '.join(ANALYSES)}, got {analysis!r}"
            raise ValueError(msg)
        fn = getattr(self, name)
        return fn(by=by) if name in BY_ANALYSES else fn()

    def close(self) -> None:
        """Release the engine (stops an embedded cluster)."""
        self.engine.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dataset(path: str | Any, engine: str = "pandas", tz: str = sem.DEFAULT_TZ,
                 on_invalid: str = "raise", *, rejected_path: str | None = None,
                 storage_options: dict[str, Any] | None = None, **connection: Any) -> Dataset:
    """Open a dataset directory (local or ``s3://``) with an engine.

    Parameters
    ----------
    path:
        Directory holding campaigns, ads, establishments, interactions and locations as
        ``NAME.parquet``, Parquet directory ``NAME/``, ``NAME.csv`` or ``NAME.csv.gz``.
        May also be a dict of tables (column dicts or pandas DataFrames).
    engine:
        ``"pandas"`` (in-process reference), ``"dask"`` or ``"spark"``.
    tz:
        IANA time zone of the calendar buckets (month, hour, period, weekday).
    on_invalid:
        ``"raise"``: invalid rows raise :class:`~adanalytics.errors.ValidationError`
        naming table, rule, count and examples. ``"quarantine"``: they are set aside
        (``Dataset.rejected``, and written under ``rejected_path`` when given).
    **connection:
        Engine connection options: ``address=`` (Dask scheduler), ``master=`` (Spark).
    """
    tz = check_tz(tz)
    on_invalid = _check_on_invalid(on_invalid)
    eng = get_engine(engine, **connection)
    start = time.perf_counter()
    try:
        if isinstance(path, dict):
            if not hasattr(eng, "from_frames"):
                msg = f"the {engine} engine cannot open in-memory tables"
                raise TypeError(msg)
            tables, report = eng.from_frames(path, on_invalid=on_invalid, rejected_path=rejected_path)
            source = "<memory>"
        else:
            source = str(path)
            tables, report = eng.load(source, tz=tz, on_invalid=on_invalid,
                                      rejected_path=rejected_path, storage_options=storage_options)
    except BaseException:
        eng.close()
        raise
    ds = Dataset(eng, tables, report, tz, source)
    ds.load_seconds = time.perf_counter() - start  # type: ignore[attr-defined]
    return ds


def to_pandas(frame: Any) -> pd.DataFrame:
    """Collect any engine's result frame into pandas (Dask computes, Spark collects)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    mod = type(frame).__module__
    if mod.startswith("dask"):
        return frame.compute()
    if mod.startswith("pyspark"):
        from adanalytics.engines.spark.collect import spark_to_pandas

        return spark_to_pandas(frame)
    msg = f"cannot convert {type(frame).__name__} to pandas"
    raise TypeError(msg)
