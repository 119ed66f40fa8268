"""The pandas engine: in-process, the reference semantics."""

from __future__ import annotations

from typing import Any

import pandas as pd

from adanalytics.engines.base import RecommendParams, Tables
from adanalytics.engines.pandas import attribution as _attr
from adanalytics.engines.pandas import ctr as _ctr
from adanalytics.engines.pandas import hourly as _hourly
from adanalytics.engines.pandas import load as _load
from adanalytics.engines.pandas import profiles as _prof
from adanalytics.engines.pandas import recommendations as _rec
from adanalytics.engines.pandas import visits as _visits
from adanalytics.schema import ValidationReport


class PandasEngine:
    """Runs every analysis in this process with pandas and numpy."""

    name = "pandas"

    def load(self, path: str, *, tz: str, on_invalid: str, rejected_path: str | None,
             storage_options: dict[str, Any] | None) -> tuple[Tables, ValidationReport]:
        tables, report, self.rejected = _load.load(
            path, on_invalid=on_invalid, rejected_path=rejected_path,
            storage_options=storage_options,
        )
        return tables, report

    def from_frames(self, data: dict[str, Any], *, on_invalid: str,
                    rejected_path: str | None = None) -> tuple[Tables, ValidationReport]:
        """Tables from in-memory data (dicts of columns or pandas DataFrames)."""
        raw = _load.frames_from_dicts(data)
        valid, rejected, report = _load.validate_frames(raw)
        _load.finish_validation(report, rejected, on_invalid, rejected_path, None)
        self.rejected = rejected
        return Tables(**valid), report

    def persist(self, tables: Tables) -> Tables:
        return tables  # already in memory

    def ctr(self, t: Tables, *, by: str, tz: str) -> pd.DataFrame:
        return _ctr.ctr(t.interactions, t.ads, by=by, tz=tz)

    def visits(self, t: Tables, *, by: str, tz: str, radius_m: float) -> pd.DataFrame:
        return _visits.visits(t.locations, t.establishments, by=by, tz=tz, radius_m=radius_m)

    def attribution(self, t: Tables, *, by: str, tz: str, window: pd.Timedelta,
                    radius_m: float) -> pd.DataFrame:
        return _attr.attribution(t.locations, t.establishments, t.interactions, t.ads,
                                 by=by, tz=tz, window=window, radius_m=radius_m)

    def category_hourly(self, t: Tables, *, by: str, tz: str) -> pd.DataFrame:
        return _hourly.category_hourly(t.interactions, t.ads, by=by, tz=tz)

    def interaction_profile(self, t: Tables, *, tz: str) -> pd.DataFrame:
        return _prof.interaction_profile(t.interactions, t.ads, tz=tz)

    def preferred_ad_category(self, t: Tables, *, tz: str) -> pd.DataFrame:
        return _prof.preferred_ad_category(t.interactions, t.ads, tz=tz)

    def visit_profile(self, t: Tables, *, tz: str, radius_m: float) -> pd.DataFrame:
        return _prof.visit_profile(t.locations, t.establishments, tz=tz, radius_m=radius_m)

    def preferred_establishment_category(self, t: Tables, *, tz: str,
                                         radius_m: float) -> pd.DataFrame:
        return _prof.preferred_establishment_category(t.locations, t.establishments, tz=tz,
                                                      radius_m=radius_m)

    def recommendations(self, t: Tables, *, tz: str, params: RecommendParams) -> pd.DataFrame:
        return _rec.recommendations(t.locations, t.establishments, t.ads, t.campaigns,
                                    t.interactions, tz=tz, params=params)

    def to_pandas(self, frame: Any) -> pd.DataFrame:
        return frame

    def close(self) -> None:
        pass
