"""The seam every engine plugs into.

An engine loads and validates the five tables into its own frames (:class:`Tables`) and
answers each analysis of SPEC §3 with its native DataFrame. Parameters arrive already
checked and parsed by :class:`adanalytics.dataset.Dataset`; the *semantics* (what counts,
which boundary is inclusive) live in :mod:`adanalytics.semantics` and in the pandas
reference kernels, which the Dask engine runs per partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from adanalytics.schema import ValidationReport


@dataclass
class Tables:
    """The five validated tables, as the engine's frames."""

    campaigns: Any
    ads: Any
    establishments: Any
    interactions: Any
    locations: Any

    def items(self) -> list[tuple[str, Any]]:
        return [(n, getattr(self, n)) for n in ("campaigns", "ads", "establishments",
                                                "interactions", "locations")]


@dataclass(frozen=True)
class RecommendParams:
    """Parameters of the recommendation rule (SPEC §3.7), already parsed."""

    approach_radius_m: float
    max_gap: pd.Timedelta
    min_closing_m: float
    cooldown: pd.Timedelta


class Engine(Protocol):
    """What an engine provides. ``frame`` is the engine's native DataFrame type."""

    name: str

    def load(
        self,
        path: str,
        *,
        tz: str,
        on_invalid: str,
        rejected_path: str | None,
        storage_options: dict[str, Any] | None,
    ) -> tuple[Tables, ValidationReport]: ...

    def persist(self, tables: Tables) -> Tables: ...

    def ctr(self, t: Tables, *, by: str, tz: str) -> Any: ...

    def visits(self, t: Tables, *, by: str, tz: str, radius_m: float) -> Any: ...

    def attribution(
        self, t: Tables, *, by: str, tz: str, window: pd.Timedelta, radius_m: float
    ) -> Any: ...

    def category_hourly(self, t: Tables, *, by: str, tz: str) -> Any: ...

    def interaction_profile(self, t: Tables, *, tz: str) -> Any: ...

    def preferred_ad_category(self, t: Tables, *, tz: str) -> Any: ...

    def visit_profile(self, t: Tables, *, tz: str, radius_m: float) -> Any: ...

    def preferred_establishment_category(self, t: Tables, *, tz: str, radius_m: float) -> Any: ...

    def recommendations(self, t: Tables, *, tz: str, params: RecommendParams) -> Any: ...

    def to_pandas(self, frame: Any) -> pd.DataFrame: ...

    def close(self) -> None: ...
