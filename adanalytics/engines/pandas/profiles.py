"""Questions 5 and 6: per-user category profiles by period of day / weekday, and each
user's preferred category (SPEC §3.5-3.6). The tie-break (smallest category among the
most frequent) is ``semantics.TIE_BREAK``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb
from adanalytics.engines.pandas.joins import lookup, sort_output
from adanalytics.engines.pandas.visits import place_index, visit_pairs
from adanalytics.semantics import output_columns, output_keys


def interaction_profile_counts(interactions: pd.DataFrame, ads: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Kernel: interactions per (user, period, ad category) - summable."""
    df = pd.DataFrame({
        "user_id": interactions["user_id"].to_numpy(),
        "period": tb.period(tb.local(interactions["ts"], tz)).to_numpy(),
        "category": lookup(ads["ad_id"], ads["category"], interactions["ad_id"]).to_numpy(),
    })
    return _count(df, ["user_id", "period", "category"], "interactions")


def visit_profile_counts(pairs: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Kernel: visits per (user, weekday, establishment category) from visit pairs - summable."""
    df = pd.DataFrame({
        "user_id": pairs["user_id"].to_numpy(),
        "weekday": tb.weekday(tb.local(pairs["ts"], tz)).to_numpy(),
        "category": pairs["category"].to_numpy(),
    })
    return _count(df, ["user_id", "weekday", "category"], "visits")


def _count(df: pd.DataFrame, keys: list[str], name: str) -> pd.DataFrame:
    if df.empty:
        return df.assign(**{name: np.zeros(0, dtype=np.int64)})
    return df.groupby(keys, sort=False).size().rename(name).reset_index()


def profile_finalize(counts: pd.DataFrame, analysis: str) -> pd.DataFrame:
    """Sum counts per key and add ``share`` = count / user's total in the same slot."""
    cols = output_columns(analysis)
    keys, count_col = cols[:3], cols[3]
    out = counts.groupby(keys, sort=False, as_index=False)[count_col].sum() if len(counts) else counts.copy()
    out[count_col] = out[count_col].astype(np.int64)
    total = out.groupby(keys[:2], sort=False)[count_col].transform("sum")
    out["share"] = (out[count_col] / total).astype(np.float64)
    return sort_output(out[cols], output_keys(analysis))


def preferred(profile: pd.DataFrame, analysis: str) -> pd.DataFrame:
    """One row per (user, slot): the category with most events; ties -> smallest category."""
    cols = output_columns(analysis)
    slot_keys, count_col = cols[:2], cols[3]
    if profile.empty:
        return profile[cols].copy()
    ranked = profile.assign(_cat=profile["category"].astype(str)).sort_values(
        [*slot_keys, count_col, "_cat"], ascending=[True, True, False, True], kind="mergesort"
    )
    best = ranked.drop_duplicates(slot_keys, keep="first")
    return sort_output(best[cols], output_keys(analysis))


def interaction_profile(interactions: pd.DataFrame, ads: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Per user and period of the day: interactions and share per ad category."""
    return profile_finalize(interaction_profile_counts(interactions, ads, tz=tz), "interaction_profile")


def preferred_ad_category(interactions: pd.DataFrame, ads: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Per user and period of the day: the preferred ad category."""
    return preferred(interaction_profile(interactions, ads, tz=tz), "preferred_ad_category")


def visit_profile(locations: pd.DataFrame, establishments: pd.DataFrame, *, tz: str,
                  radius_m: float) -> pd.DataFrame:
    """Per user and weekday: visits and share per establishment category."""
    pairs = visit_pairs(locations, place_index(establishments, radius_m))
    return profile_finalize(visit_profile_counts(pairs, tz=tz), "visit_profile")


def preferred_establishment_category(locations: pd.DataFrame, establishments: pd.DataFrame, *,
                                     tz: str, radius_m: float) -> pd.DataFrame:
    """Per user and weekday: the preferred establishment category."""
    prof = visit_profile(locations, establishments, tz=tz, radius_m=radius_m)
    return preferred(prof, "preferred_establishment_category")
