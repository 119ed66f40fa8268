"""The numbers of SPEC §3, written once.

Every engine, the CLI, the notebooks and the tests read the rules from here: a newcomer
asking "where does the 50 m rule live?" finds it in this file (``VISIT_RADIUS_M``), and
"where is the 6 h window?" (``ATTRIBUTION_WINDOW``).
"""

from __future__ import annotations

import pandas as pd

#: Mean Earth radius (IUGG) used by the haversine distance, in metres.
EARTH_RADIUS_M: float = 6_371_008.8

#: Default time zone of a dataset: every calendar bucket is taken in local time.
DEFAULT_TZ: str = "America/Recife"

# --- Question 2: a visit is a location record strictly closer than this to an establishment.
VISIT_RADIUS_M: float = 50.0

# --- Question 3: a visit is attributed to an interaction with an ad of the same
# establishment that happened at most this long before it (both ends inclusive).
ATTRIBUTION_WINDOW: pd.Timedelta = pd.Timedelta(hours=6)

# --- Question 1: Wilson score interval, 95 %.
WILSON_Z: float = 1.959963984540054

# --- Question 5: periods of the day, [start hour, end hour) in local time, in day order.
PERIODS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 18),
    ("evening", 18, 24),
)
PERIOD_NAMES: tuple[str, ...] = tuple(p[0] for p in PERIODS)
#: local hour (0-23) -> period name
PERIOD_OF_HOUR: tuple[str, ...] = tuple(
    name for name, start, end in PERIODS for _ in range(start, end)
)

# --- Question 6: weekday numbering, 0 = Monday ... 6 = Sunday (ISO order, pandas/Python).
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# --- Interactions.
ACTIONS: tuple[str, ...] = ("view", "click")

# --- Question 7: real-time recommendation defaults.
APPROACH_RADIUS_M: float = 500.0
MAX_GAP: pd.Timedelta = pd.Timedelta(minutes=15)
MIN_CLOSING_M: float = 10.0
COOLDOWN: pd.Timedelta = pd.Timedelta(hours=1)

# --- Grouping of batch results.
BY_VALUES: tuple[str, ...] = ("total", "month")

# Preferred category tie-break: among categories with the most interactions/visits, the
# lexicographically smallest wins (documented here; implemented by sorting on
# (count desc, category asc) in every engine).
TIE_BREAK = "lexicographically smallest category"

#: Output columns of every analysis, in order, with their pandas dtypes ("id" means the
#: input's id type is kept). ``month`` appears only for ``by="month"``.
OUTPUT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "ctr": (
        ("campaign_id", "id"),
        ("month", "str"),
        ("views", "int64"),
        ("clicks", "int64"),
        ("ctr", "float64"),
        ("ctr_low", "float64"),
        ("ctr_high", "float64"),
    ),
    "visits": (
        ("establishment_id", "id"),
        ("month", "str"),
        ("visits", "int64"),
        ("visitors", "int64"),
    ),
    "attribution": (
        ("establishment_id", "id"),
        ("month", "str"),
        ("visits", "int64"),
        ("attributed_visits", "int64"),
        ("ratio", "float64"),
    ),
    "category_hourly": (
        ("category", "str"),
        ("month", "str"),
        ("hour", "int64"),
        ("interactions", "int64"),
        ("views", "int64"),
        ("clicks", "int64"),
    ),
    "interaction_profile": (
        ("user_id", "id"),
        ("period", "str"),
        ("category", "str"),
        ("interactions", "int64"),
        ("share", "float64"),
    ),
    "preferred_ad_category": (
        ("user_id", "id"),
        ("period", "str"),
        ("category", "str"),
        ("interactions", "int64"),
        ("share", "float64"),
    ),
    "visit_profile": (
        ("user_id", "id"),
        ("weekday", "int64"),
        ("category", "str"),
        ("visits", "int64"),
        ("share", "float64"),
    ),
    "preferred_establishment_category": (
        ("user_id", "id"),
        ("weekday", "int64"),
        ("category", "str"),
        ("visits", "int64"),
        ("share", "float64"),
    ),
    "recommendations": (
        ("user_id", "id"),
        ("establishment_id", "id"),
        ("ad_id", "id"),
        ("ts", "datetime64[ns, UTC]"),
        ("distance_m", "float64"),
    ),
}

#: The key of every output (one row per key) - also its sort order.
OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "ctr": ("campaign_id", "month"),
    "visits": ("establishment_id", "month"),
    "attribution": ("establishment_id", "month"),
    "category_hourly": ("category", "month", "hour"),
    "interaction_profile": ("user_id", "period", "category"),
    "preferred_ad_category": ("user_id", "period"),
    "visit_profile": ("user_id", "weekday", "category"),
    "preferred_establishment_category": ("user_id", "weekday"),
    "recommendations": ("user_id", "ts", "establishment_id"),
}


def output_columns(analysis: str, by: str | None = None) -> list[str]:
    """Column names of ``analysis``'s output, in order (``month`` only for ``by="month"``)."""
    cols = [name for name, _ in OUTPUT_COLUMNS[analysis]]
    if by != "month" and "month" in cols:
        cols.remove("month")
    return cols


def output_keys(analysis: str, by: str | None = None) -> list[str]:
    """Key columns of ``analysis``'s output (its sort order)."""
    keys = list(OUTPUT_KEYS[analysis])
    if by != "month" and "month" in keys:
        keys.remove("month")
    return keys


def check_by(by: str) -> str:
    """Validate a ``by`` argument."""
    if by not in BY_VALUES:
        msg = f"by must be one of {BY_VALUES}, got {by!r}"
        raise ValueError(msg)
    return by


def to_timedelta(value: str | pd.Timedelta | float, name: str) -> pd.Timedelta:
    """Parse a duration such as ``"6h"``, ``"15min"`` or a number of seconds."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            td = pd.Timedelta(seconds=float(value))
        else:
            td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        msg = f"{name} must be a duration such as '6h' or '15min', got {value!r}"
        raise ValueError(msg) from exc
    if pd.isna(td) or td < pd.Timedelta(0):
        msg = f"{name} must be a non-negative duration, got {value!r}"
        raise ValueError(msg)
    return td


def check_radius(value: float, name: str = "radius_m") -> float:
    """Validate a distance in metres (positive, finite)."""
    try:
        r = float(value)
    except (TypeError, ValueError) as exc:
        msg = f"{name} must be a number of metres, got {value!r}"
        raise ValueError(msg) from exc
    if not (r > 0 and r < 1e7):
        msg = f"{name} must be > 0 and < 10,000 km, got {value!r}"
        raise ValueError(msg)
    return r


def wilson_interval(clicks, views, z: float = WILSON_Z):  # type: ignore[no-untyped-def]
    """Wilson score interval of ``clicks / views`` (numpy arrays; NaN where views = 0).

    ``p`` is clamped to 1 (clicks may exceed views in raw data).
    """
    import numpy as np

    n = np.asarray(views, dtype=np.float64)
    c = np.asarray(clicks, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(c / n, 1.0)
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
        low = np.where(n > 0, centre - half, np.nan)
        high = np.where(n > 0, centre + half, np.nan)
    return low, high
