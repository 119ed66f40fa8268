"""Charts and maps shared by the notebooks, the HTML report and the demo.

Every chart function takes a pandas result of the matching analysis (``aa.to_pandas``)
and returns a matplotlib :class:`~matplotlib.figure.Figure` (no pyplot state, so charts
can be drawn from threads and never pop up windows) with a title, axis labels, units and
the time zone of calendar buckets noted. Ranking helpers (``rank_*``) return the table a
chart draws, so a notebook can show the numbers behind every bar.

Ranking rules (presentation, not analysis: the numbers come from the library):

- Q1 campaigns are ranked by the lower bound of the Wilson 95 % interval of their CTR, so
  a campaign with 2 clicks in 3 views does not beat one with 300 in 10,000; and only
  campaigns with at least ``min_views`` views in the bucket are ranked.
- Q3 establishments are ranked by the attributed share among those with at least
  ``min_visits`` visits in the bucket (ties: more visits first).
- ``min_views``/``min_visits`` may be ``"auto"``: the bucket's median count, bounded to
  [floor, default] (:func:`auto_min_count`), so small samples still show a ranking and
  large ones use the full rule.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics.semantics import (
    ATTRIBUTION_WINDOW,
    PERIOD_NAMES,
    VISIT_RADIUS_M,
    WEEKDAYS,
    wilson_interval,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Minimum views of a campaign (in a bucket) to be ranked by CTR.
MIN_VIEWS = 100
#: Minimum visits of an establishment (in a bucket) to be ranked by attributed share.
MIN_VISITS = 20
#: Floors of the ``"auto"`` rules (below these, a ratio is mostly noise).
MIN_VIEWS_FLOOR = 10
MIN_VISITS_FLOOR = 5
AUTO = "auto"

BLUE, ORANGE, GREEN, RED, GREY = "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8C8C8C"


# --- figure plumbing ------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _figure(width: float = 9.0, height: float = 4.5) -> tuple[Figure, Any]:
    fig = _new_figure(width, height)
    return fig, fig.add_subplot()


def _panels(n: int, ncols: int = 3, panel_w: float = 4.2, panel_h: float = 3.6,
            sharex: bool = False, sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels on a grid of at most ``ncols`` columns."""
    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(panel_w * ncols, panel_h * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY,
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _tz_note(tz: str | None) -> str:
    return f" (months in {tz})" if tz else ""


def _months(df: pd.DataFrame) -> list[str]:
    return sorted(df["month"].astype(str).unique()) if "month" in df.columns else []


def _label(ids: pd.Series, names: pd.Series | dict | None, width: int = 28) -> list[str]:
    """``id name`` labels (name shortened), or the ids alone."""
    out = ids.astype(str)
    if names is not None:
        mapped = ids.map(names).fillna("").astype(str)
        mapped = mapped.where(mapped.str.len() <= width, mapped.str.slice(0, width - 1) + "…")
        out = out + "  " + mapped
    return out.str.strip().tolist()


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save(fig: Figure, path: str) -> str:
    """Save a figure as PNG (100 dpi) and return the path."""
    fig.savefig(path, dpi=100)
    return path


# --- ranking rules --------------------------------------------------------------------
def auto_min_count(counts: pd.Series, default: int, floor: int) -> int:
    """The ``"auto"`` minimum: the median count, bounded to [floor, default]."""
    if len(counts) == 0:
        return int(default)
    return int(min(default, max(floor, math.floor(float(np.median(counts))))))


def _threshold(rule: int | str, counts: pd.Series, default: int, floor: int) -> int:
    if rule == AUTO:
        return auto_min_count(counts, default, floor)
    try:
        value = int(rule)
    except (TypeError, ValueError):
        msg = f"a minimum count must be a non-negative integer or 'auto', got {rule!r}"
        raise ValueError(msg) from None
    if value < 0:
        msg = f"a minimum count must be >= 0, got {rule!r}"
        raise ValueError(msg)
    return value


def _per_bucket(df: pd.DataFrame, fn: Any) -> pd.DataFrame:
    if "month" not in df.columns:
        return fn(df)
    parts = [fn(g) for _, g in df.groupby("month", sort=True)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return fn(df.iloc[:0])
    return pd.concat(parts, ignore_index=True)


def rank_campaigns(ctr: pd.DataFrame, top_n: int = 10, min_views: int | str = MIN_VIEWS,
                   names: pd.Series | dict | None = None) -> pd.DataFrame:
    """Best campaigns by the Wilson lower bound of CTR, per month when ``ctr`` has one.

    Returns the ``ctr`` rows kept (``top_n`` per bucket, best first) with ``rank`` and
    ``min_views`` (the rule applied in that bucket) first, and ``name`` when given.
    """
    def one(g: pd.DataFrame) -> pd.DataFrame:
        k = _threshold(min_views, g["views"], MIN_VIEWS, MIN_VIEWS_FLOOR)
        kept = g[g["views"] >= max(k, 1)].sort_values(
            ["ctr_low", "ctr", "campaign_id"], ascending=[False, False, True], kind="stable")
        kept = kept.head(top_n).copy()
        return _ranked(kept, "campaign_id", names, min_views=k)

    return _per_bucket(ctr, one).reset_index(drop=True)


def _ranked(kept: pd.DataFrame, id_col: str, names: pd.Series | dict | None,
            **rule: Any) -> pd.DataFrame:
    """``kept`` (best first) with ``rank`` first, then the threshold ``rule`` applied
    (e.g. ``min_views=k``), and ``name`` after ``id_col`` when ``names`` are given."""
    kept.insert(0, "rank", np.arange(1, len(kept) + 1))
    for i, (col, value) in enumerate(rule.items(), start=1):
        kept.insert(i, col, value)
    if names is not None:
        kept.insert(kept.columns.get_loc(id_col) + 1, "name", kept[id_col].map(names))
    return kept


def rank_establishments(visits: pd.DataFrame, top_n: int = 10,
                        names: pd.Series | dict | None = None) -> pd.DataFrame:
    """Most visited establishments (ties: more visitors, then id), per month when present."""
    def one(g: pd.DataFrame) -> pd.DataFrame:
        kept = g.sort_values(["visits", "visitors", "establishment_id"],
                             ascending=[False, False, True], kind="stable").head(top_n).copy()
        return _ranked(kept, "establishment_id", names)

    return _per_bucket(visits, one).reset_index(drop=True)


def rank_attribution(attribution: pd.DataFrame, top_n: int = 10,
                     min_visits: int | str = MIN_VISITS,
                     names: pd.Series | dict | None = None) -> pd.DataFrame:
    """Establishments with the highest share of interaction-driven visits, per month when
    present, among those with at least ``min_visits`` visits and one attributed; adds the Wilson 95 %
    interval of the share (``ratio_low``, ``ratio_high``)."""
    def one(g: pd.DataFrame) -> pd.DataFrame:
        k = _threshold(min_visits, g["visits"], MIN_VISITS, MIN_VISITS_FLOOR)
        # an establishment with no attributed visit has no share to show
        kept = g[(g["visits"] >= max(k, 1)) & (g["attributed_visits"] > 0)].sort_values(
            ["ratio", "visits", "establishment_id"], ascending=[False, False, True], kind="stable")
        kept = kept.head(top_n).copy()
        low, high = wilson_interval(kept["attributed_visits"].to_numpy(), kept["visits"].to_numpy())
        kept["ratio_low"], kept["ratio_high"] = low, high
        return _ranked(kept, "establishment_id", names, min_visits=k)

    return _per_bucket(attribution, one).reset_index(drop=True)


def most_active_users(profile: pd.DataFrame, n: int = 4) -> list:
    """The ``n`` users with most interactions (Q5) or visits (Q6) in a profile table
    (ties: smallest id)."""
    count = "interactions" if "interactions" in profile.columns else "visits"
    if profile.empty:
        return []
    totals = profile.groupby("user_id", sort=False)[count].sum().reset_index()
    totals = totals.sort_values([count, "user_id"], ascending=[False, True], kind="stable")
    return totals["user_id"].head(n).tolist()


def category_peaks(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per ad category: interactions, views, clicks, the local hour with most interactions
    (ties: earliest) and that hour's share of the category's interactions."""
    cols = ["category", "interactions", "views", "clicks", "peak_hour", "peak_share"]
    if hourly.empty:
        return pd.DataFrame({c: [] for c in cols})
    by_hour = hourly.groupby(["category", "hour"], as_index=False)[
        ["interactions", "views", "clicks"]].sum()
    totals = by_hour.groupby("category", as_index=False)[["interactions", "views", "clicks"]].sum()
    peak = (by_hour.sort_values(["category", "interactions", "hour"],
                                ascending=[True, False, True], kind="stable")
            .drop_duplicates("category")[["category", "hour", "interactions"]]
            .rename(columns={"hour": "peak_hour", "interactions": "peak"}))
    out = totals.merge(peak, on="category")
    out["peak_share"] = out["peak"] / out["interactions"].where(out["interactions"] > 0)
    return (out.sort_values(["interactions", "category"], ascending=[False, True])[cols]
            .reset_index(drop=True))


def preferred_table(preferred: pd.DataFrame, users: Sequence, slot: str) -> pd.DataFrame:
    """Users x slots (periods of the day or weekdays): ``category (share %)`` of each
    user's preferred category, ``–`` where the user has none."""
    order, labels = _slots(slot)
    sub = preferred[preferred["user_id"].isin(list(users))]
    cell = sub["category"].astype(str) + " (" + (sub["share"] * 100).round().astype(int).astype(str) + " %)"
    grid = (sub.assign(cell=cell).pivot_table(index="user_id", columns=slot, values="cell",
                                              aggfunc="first")
            .reindex(index=list(users), columns=order).fillna("–"))
    grid.columns = labels
    grid.index.name = "user_id"
    return grid.reset_index()


def preferred_counts(preferred: pd.DataFrame, slot: str) -> pd.DataFrame:
    """How many users prefer each category in each slot (categories x slots)."""
    order, labels = _slots(slot)
    grid = (pd.crosstab(preferred["category"].astype(str), preferred[slot])
            .reindex(columns=order, fill_value=0))
    grid.columns = labels
    grid["all"] = grid.sum(axis=1)
    grid = grid.sort_values("all", ascending=False)
    grid.index.name = "category"
    return grid.reset_index()


# --- Q1: campaign performance ---------------------------------------------------------
def _fill_slots(ax: Axes, n: int, slots: int | None) -> None:
    """Keep bar heights equal across panels: room for ``slots`` bars, filled from the top."""
    if slots and slots > n:
        ax.set_ylim(-0.6 - (slots - n), n - 0.4)


def _ctr_bars(ax: Axes, ranked: pd.DataFrame, names: Any = None, slots: int | None = None) -> None:
    df = ranked.iloc[::-1]
    y = np.arange(len(df))
    _fill_slots(ax, len(df), slots)
    ctr, low, high = (df[c].to_numpy(dtype=float) * 100 for c in ("ctr", "ctr_low", "ctr_high"))
    ax.barh(y, ctr, color=BLUE, alpha=0.8, label="CTR")
    # the bounds can sit a rounding error inside the bar at 0 or 100 %
    err = [np.clip(ctr - low, 0, None), np.clip(high - ctr, 0, None)]
    ax.errorbar(ctr, y, xerr=err, fmt="none", ecolor="black", capsize=3,
                label="Wilson 95 % interval")
    ax.set_yticks(y, _label(df["campaign_id"], names))
    ax.set_xlabel("click-through rate (%)")


def top_campaigns_ctr(ctr: pd.DataFrame, top_n: int = 10, min_views: int | str = MIN_VIEWS,
                      title: str = "Best campaigns by CTR", names: Any = None) -> Figure:
    """Campaigns ranked by the Wilson lower bound of CTR (noise does not win), with their
    95 % interval; campaigns with fewer than ``min_views`` views are left out."""
    # a by-month frame is ranked as one pool of (campaign, month) rows
    ranked = rank_campaigns(ctr.drop(columns="month", errors="ignore"), top_n, min_views)
    k = int(ranked["min_views"].iloc[0]) if len(ranked) else _threshold(
        min_views, ctr["views"], MIN_VIEWS, MIN_VIEWS_FLOOR)
    fig, ax = _figure(9, 0.45 * max(len(ranked), 4) + 1.6)
    if ranked.empty:
        _empty(ax, f"no campaign has ≥ {k:,} views")
    else:
        _ctr_bars(ax, ranked, names)
        ax.legend(loc="lower right")
    ax.set_ylabel("campaign")
    ax.set_title(f"{title} (ranked by Wilson lower bound, ≥ {k:,} views)")
    return fig


def top_campaigns_ctr_by_month(ctr_month: pd.DataFrame, top_n: int = 5,
                               min_views: int | str = MIN_VIEWS, tz: str | None = None,
                               names: Any = None) -> Figure:
    """One panel per month: the best campaigns of that month by Wilson lower bound of CTR,
    with their 95 % intervals (``min_views`` applied per month)."""
    months = _months(ctr_month)
    ranked = rank_campaigns(ctr_month, top_n, min_views)
    fig, axes = _panels(len(months), ncols=3, panel_w=4.6 if names is None else 6.0,
                        panel_h=0.38 * max(top_n, 4) + 1.4, sharex=True)
    for ax, month in zip(axes, months or ["—"], strict=False):
        sub = ranked[ranked["month"].astype(str) == month] if len(ranked) else ranked
        k = int(sub["min_views"].iloc[0]) if len(sub) else _threshold(
            min_views, ctr_month.loc[ctr_month["month"].astype(str) == month, "views"]
            if months else pd.Series(dtype=float), MIN_VIEWS, MIN_VIEWS_FLOOR)
        if sub.empty:
            _empty(ax, f"no campaign with ≥ {k:,} views")
        else:
            _ctr_bars(ax, sub, names, slots=top_n)
        ax.set_title(f"{month}  (≥ {k:,} views)", fontsize="medium")
    fig.suptitle(f"Best campaigns by CTR per month, Wilson 95 % intervals{_tz_note(tz)}")
    return fig


# --- Q2: establishment performance ----------------------------------------------------
def _visit_bars(ax: Axes, ranked: pd.DataFrame, names: Any = None,
                slots: int | None = None) -> None:
    df = ranked.iloc[::-1]
    y = np.arange(len(df))
    _fill_slots(ax, len(df), slots)
    ax.barh(y - 0.2, df["visits"], height=0.4, color=BLUE,
            label=f"visits (records < {VISIT_RADIUS_M:g} m)")
    ax.barh(y + 0.2, df["visitors"], height=0.4, color=ORANGE, label="distinct visitors")
    ax.set_yticks(y, _label(df["establishment_id"], names))
    ax.set_xlabel("count")


def top_establishments(visits: pd.DataFrame, top_n: int = 10,
                       title: str = "Most visited establishments",
                       names: pd.Series | dict | None = None) -> Figure:
    """Horizontal bars of the most visited establishments (visits and distinct visitors)."""
    if "month" in visits.columns:
        visits = visits.groupby("establishment_id", as_index=False)[["visits", "visitors"]].max()
    ranked = rank_establishments(visits, top_n)
    fig, ax = _figure(9, 0.45 * max(len(ranked), 4) + 1.6)
    if ranked.empty:
        _empty(ax, "no visit")
    else:
        _visit_bars(ax, ranked, names)
        ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def top_establishments_by_month(visits_month: pd.DataFrame, top_n: int = 5,
                                tz: str | None = None,
                                names: pd.Series | dict | None = None) -> Figure:
    """One panel per month: the most visited establishments of that month."""
    months = _months(visits_month)
    ranked = rank_establishments(visits_month, top_n)
    fig, axes = _panels(len(months), ncols=3, panel_w=4.6 if names is None else 6.4,
                        panel_h=0.38 * max(top_n, 4) + 1.4)
    for ax, month in zip(axes, months or ["—"], strict=False):
        sub = ranked[ranked["month"].astype(str) == month] if len(ranked) else ranked
        if sub.empty:
            _empty(ax, "no visit")
        else:
            _visit_bars(ax, sub, names, slots=top_n)
        ax.set_title(month, fontsize="medium")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"Most visited establishments per month{_tz_note(tz)}")
    return fig


def establishment_map(establishments: pd.DataFrame, visits: pd.DataFrame, top_n: int = 10,
                      title: str = "Establishments sized by visits") -> Figure:
    """Map (lon/lat, equirectangular around the city) of every establishment: a circle
    sized by its visits and coloured by category; the ``top_n`` most visited labelled;
    establishments without visits as small grey dots."""
    if "month" in visits.columns:
        visits = visits.groupby("establishment_id", as_index=False)[["visits", "visitors"]].sum()
    est = establishments.merge(visits[["establishment_id", "visits"]], on="establishment_id",
                               how="left")
    est["visits"] = est["visits"].fillna(0)
    fig, ax = _figure(9, 8)
    if est.empty:
        _empty(ax, "no establishment")
        ax.set_title(title)
        return fig
    none = est[est["visits"] <= 0]
    ax.scatter(none["lon"], none["lat"], s=6, c="#BBBBBB", marker=".", label="no visit")
    hit = est[est["visits"] > 0].sort_values("visits", ascending=False)
    vmax = float(hit["visits"].max()) if len(hit) else 1.0
    size = 20 + 600 * np.sqrt(hit["visits"] / vmax)  # area grows with visits
    cats = sorted(est["category"].astype(str).unique())
    colours = _category_colours(cats)
    for cat in cats:
        sub = hit["category"].astype(str) == cat
        if sub.any():
            ax.scatter(hit.loc[sub, "lon"], hit.loc[sub, "lat"], s=size[sub], alpha=0.6,
                       color=colours[cat], edgecolors="white", linewidths=0.5, label=cat)
    for _, row in hit.head(top_n).iterrows():
        ax.annotate(f"{row['establishment_id']} ({int(row['visits']):,})",
                    (row["lon"], row["lat"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_aspect(1 / max(np.cos(np.radians(float(est["lat"].mean()))), 1e-6))
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1),
                       title="category", markerscale=0.5)
    legend.get_title().set_fontsize("small")
    ax.set_title(f"{title} (area ∝ visits; max {int(vmax):,})")
    return fig


# --- Q3: interaction -> visit correlation ---------------------------------------------
def _share_bars(ax: Axes, ranked: pd.DataFrame, names: Any = None,
                slots: int | None = None) -> None:
    df = ranked.iloc[::-1]
    y = np.arange(len(df))
    _fill_slots(ax, len(df), slots)
    ratio = df["ratio"].to_numpy(dtype=float) * 100
    ax.barh(y, ratio, color=GREEN)
    right = ratio
    if "ratio_low" in df.columns:
        low, high = df["ratio_low"].to_numpy(float) * 100, df["ratio_high"].to_numpy(float) * 100
        err = [np.clip(ratio - low, 0, None), np.clip(high - ratio, 0, None)]
        ax.errorbar(ratio, y, xerr=err, fmt="none", ecolor="black", capsize=3)
        right = np.maximum(ratio, high)
    for yi, (a, v, r) in enumerate(zip(df["attributed_visits"], df["visits"], right, strict=True)):
        ax.text(r + 1, yi, f"{int(a):,}/{int(v):,}", va="center", fontsize="small")
    ax.set_yticks(y, _label(df["establishment_id"], names))
    hours = ATTRIBUTION_WINDOW / pd.Timedelta(hours=1)
    ax.set_xlabel(f"visits within {hours:g} h of an interaction (%)")
    ax.set_xlim(0, 115)


def top_attribution(attribution: pd.DataFrame, top_n: int = 10,
                    min_visits: int | str = MIN_VISITS,
                    title: str = "Share of visits following an ad interaction",
                    names: Any = None) -> Figure:
    """Establishments with the highest attributed share (at least ``min_visits`` visits)."""
    if "month" in attribution.columns:
        attribution = attribution.groupby("establishment_id", as_index=False)[
            ["visits", "attributed_visits"]].sum()
        attribution["ratio"] = attribution["attributed_visits"] / attribution["visits"]
    ranked = rank_attribution(attribution, top_n, min_visits)
    k = int(ranked["min_visits"].iloc[0]) if len(ranked) else _threshold(
        min_visits, attribution["visits"], MIN_VISITS, MIN_VISITS_FLOOR)
    fig, ax = _figure(9, 0.45 * max(len(ranked), 4) + 1.6)
    if ranked.empty:
        _empty(ax, f"no attributed visit at an establishment with ≥ {k} visits")
    else:
        _share_bars(ax, ranked, names)
    hours = ATTRIBUTION_WINDOW / pd.Timedelta(hours=1)
    ax.set_title(f"{title} (≤ {hours:g} h), ≥ {k} visits, Wilson 95 % intervals")
    return fig


def top_attribution_by_month(attribution_month: pd.DataFrame, top_n: int = 5,
                             min_visits: int | str = MIN_VISITS, tz: str | None = None,
                             names: Any = None) -> Figure:
    """One panel per month: establishments with the highest share of visits that followed
    an interaction with one of their ads (within the window), ``min_visits`` per month."""
    months = _months(attribution_month)
    ranked = rank_attribution(attribution_month, top_n, min_visits)
    fig, axes = _panels(len(months), ncols=3, panel_w=4.8 if names is None else 6.4,
                        panel_h=0.38 * max(top_n, 4) + 1.4, sharex=True)
    for ax, month in zip(axes, months or ["—"], strict=False):
        sub = ranked[ranked["month"].astype(str) == month] if len(ranked) else ranked
        k = int(sub["min_visits"].iloc[0]) if len(sub) else _threshold(
            min_visits, attribution_month.loc[attribution_month["month"].astype(str) == month,
                                              "visits"] if months else pd.Series(dtype=float),
            MIN_VISITS, MIN_VISITS_FLOOR)
        if sub.empty:
            _empty(ax, f"no attributed visit at an establishment with ≥ {k} visits")
        else:
            _share_bars(ax, sub, names, slots=top_n)
        ax.set_title(f"{month}  (≥ {k} visits)", fontsize="medium")
    hours = ATTRIBUTION_WINDOW / pd.Timedelta(hours=1)
    fig.suptitle(f"Share of visits following an interaction with the establishment's ads "
                 f"(≤ {hours:g} h), Wilson 95 % intervals{_tz_note(tz)}")
    return fig


# --- Q4: ad attractiveness ------------------------------------------------------------
def _hour_grid(hourly: pd.DataFrame) -> pd.DataFrame:
    return (hourly.groupby(["category", "hour"])["interactions"].sum()
            .unstack("hour", fill_value=0).reindex(columns=range(24), fill_value=0))


def category_hour_heatmap(hourly: pd.DataFrame, tz: str,
                          title: str = "Interactions by ad category and hour") -> Figure:
    """Heatmap: ad category x local hour, colour = interactions (summed over months)."""
    grid = _hour_grid(hourly)
    fig, ax = _figure(11, 0.4 * max(len(grid), 4) + 1.6)
    if grid.empty:
        _empty(ax, "no interaction")
    else:
        im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis")
        ax.set_xticks(range(24), [str(h) for h in range(24)])
        ax.set_yticks(range(len(grid)), grid.index.astype(str))
        fig.colorbar(im, ax=ax, label="interactions")
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("ad category")
    ax.set_title(title)
    return fig


def category_hour_heatmaps_by_month(hourly_month: pd.DataFrame, tz: str) -> Figure:
    """One heatmap per month (category x local hour), on one colour scale."""
    months = _months(hourly_month)
    grids = {m: _hour_grid(hourly_month[hourly_month["month"].astype(str) == m]) for m in months}
    cats = sorted(hourly_month["category"].astype(str).unique())
    vmax = max([float(g.to_numpy().max()) for g in grids.values() if g.size] + [1.0])
    fig, axes = _panels(len(months), ncols=2, panel_w=6.2, panel_h=0.3 * max(len(cats), 4) + 1.4)
    im = None
    for ax, month in zip(axes, months or ["—"], strict=False):
        grid = grids.get(month)
        if grid is None or grid.empty:
            _empty(ax, "no interaction")
            continue
        grid = grid.reindex(cats, fill_value=0)
        im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_xticks(range(0, 24, 3), [str(h) for h in range(0, 24, 3)])
        ax.set_yticks(range(len(grid)), grid.index.astype(str), fontsize="small")
        ax.set_title(month, fontsize="medium")
        ax.set_xlabel(f"hour of day ({tz})")
    if im is not None:
        fig.colorbar(im, ax=axes, label="interactions", shrink=0.8)
    fig.suptitle(f"Interactions by ad category and hour, per month{_tz_note(tz)}")
    return fig


def _share_lines(ax: Axes, hourly: pd.DataFrame, colours: dict[str, Any]) -> None:
    grid = _hour_grid(hourly).T  # hour x category
    share = grid / grid.sum().replace(0, np.nan)
    for cat in share.columns:
        ax.plot(share.index, share[cat] * 100, label=str(cat), color=colours.get(str(cat)), lw=1.4)
    ax.set_xticks(range(0, 24, 3))
    ax.set_xlim(0, 23)


def _category_colours(categories: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cats = sorted(map(str, categories))
    # tab10 while it suffices: tab20 pairs similar shades of one hue
    cmap = matplotlib.colormaps["tab10" if len(cats) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(cats)}


def category_hour_lines(hourly: pd.DataFrame, tz: str,
                        title: str = "Share of each category's interactions by hour") -> Figure:
    """One line per category: share of its interactions in each local hour."""
    fig, ax = _figure(10, 5)
    if hourly.empty:
        _empty(ax, "no interaction")
    else:
        _share_lines(ax, hourly, _category_colours(hourly["category"].unique()))
        ax.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("share of the category's interactions (%)")
    ax.set_title(title)
    return fig


def category_hour_lines_by_month(hourly_month: pd.DataFrame, tz: str) -> Figure:
    """One panel per month: per category, the share of its interactions in each hour."""
    months = _months(hourly_month)
    colours = _category_colours(hourly_month["category"].unique())
    fig, axes = _panels(len(months), ncols=3, panel_w=4.6, panel_h=3.4, sharey=True)
    for ax, month in zip(axes, months or ["—"], strict=False):
        sub = hourly_month[hourly_month["month"].astype(str) == month]
        if sub.empty or sub["interactions"].sum() == 0:
            _empty(ax, "no interaction")
        else:
            _share_lines(ax, sub, colours)
        ax.set_title(month, fontsize="medium")
        ax.set_xlabel(f"hour ({tz})")
    axes[0].set_ylabel("share of the category's interactions (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    fig.suptitle(f"Share of each category's interactions by hour, per month{_tz_note(tz)}")
    return fig


# --- Q5 / Q6: user profiles -----------------------------------------------------------
def _slots(slot: str) -> tuple[list, list[str]]:
    if slot == "period":
        return list(PERIOD_NAMES), list(PERIOD_NAMES)
    if slot == "weekday":
        return list(range(7)), list(WEEKDAYS)
    msg = f"slot must be 'period' or 'weekday', got {slot!r}"
    raise ValueError(msg)


def user_profile_bars(profile: pd.DataFrame, users: list, slot: str,
                      title: str | None = None, tz: str | None = None) -> Figure:
    """Stacked bars per (user, slot): share of each category. ``slot`` is ``period``
    (Q5: periods of the day) or ``weekday`` (Q6: days of the week)."""
    count = "interactions" if "interactions" in profile.columns else "visits"
    order, labels = _slots(slot)
    cats = sorted(profile["category"].astype(str).unique())
    colours = _category_colours(cats)
    fig, axes = _panels(len(users), ncols=4, panel_w=3.4, panel_h=4.2, sharey=True)
    for ax, user in zip(axes, users or ["—"], strict=False):
        sub = profile[profile["user_id"] == user]
        if sub.empty:
            _empty(ax, "no data")
            ax.set_title(f"user {user}")
            continue
        table = (sub.assign(category=sub["category"].astype(str))
                 .pivot_table(index=slot, columns="category", values="share", aggfunc="sum")
                 .reindex(order).fillna(0))
        totals = sub.groupby(slot)[count].sum().reindex(order).fillna(0)
        bottom = np.zeros(len(order))
        for cat in cats:
            vals = table[cat].to_numpy() if cat in table.columns else np.zeros(len(order))
            ax.bar(range(len(order)), vals * 100, bottom=bottom, color=colours[cat], label=cat)
            bottom += vals * 100
        for x, n in enumerate(totals):
            if n:
                ax.text(x, 101, f"{int(n)}", ha="center", va="bottom", fontsize="x-small")
        ax.set_xticks(range(len(order)), labels, rotation=45)
        ax.set_ylim(0, 112)
        ax.set_title(f"user {user}")
    axes[0].set_ylabel(f"share of the {count} (%)")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize="x-small")
    what = "period of the day" if slot == "period" else "day of the week"
    zone = f", {tz}" if tz else ""
    fig.suptitle(title or f"Category distribution of the {count} by {what}{zone} "
                 f"(numbers: {count} in the slot)")
    return fig


def preferred_category_chart(preferred: pd.DataFrame, users: list, slot: str,
                             tz: str | None = None, title: str | None = None) -> Figure:
    """Grid of users x slots (periods of the day or weekdays): each cell coloured by the
    user's preferred category there, labelled with it and its share."""
    from matplotlib.patches import Rectangle

    order, labels = _slots(slot)
    cats = sorted(preferred["category"].astype(str).unique())
    colours = _category_colours(cats)
    fig, ax = _figure(1.6 * len(order) + 3, 0.6 * max(len(users), 2) + 1.8)
    if not users:
        _empty(ax, "no user")
    for yi, user in enumerate(users):
        sub = preferred[preferred["user_id"] == user].set_index(slot)
        for xi, s in enumerate(order):
            if s in sub.index:
                row = sub.loc[s]
                cat = str(row["category"])
                ax.add_patch(Rectangle((xi - 0.5, yi - 0.5), 1, 1, color=colours[cat], alpha=0.85))
                ax.text(xi, yi, f"{cat}\n{row['share'] * 100:.0f} %", ha="center", va="center",
                        fontsize="x-small")
            else:
                ax.text(xi, yi, "–", ha="center", va="center", color=GREY)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylim(max(len(users), 1) - 0.5, -0.5)
    ax.set_xticks(range(len(order)), labels)
    ax.set_yticks(range(len(users)), [str(u) for u in users])
    ax.set_ylabel("user")
    what = "period of the day" if slot == "period" else "day of the week"
    zone = f" ({tz})" if tz else ""
    ax.set_xlabel(what + zone)
    ax.set_title(title or f"Preferred category by {what} (share of the slot's "
                 f"{'interactions' if slot == 'period' else 'visits'})")
    return fig


# --- Q7: real-time recommendation -----------------------------------------------------
#: Trajectory shown around a suggestion on the maps: this long before, and after, it.
MAP_BEFORE = pd.Timedelta(minutes=45)
MAP_AFTER = pd.Timedelta(minutes=15)


def recommendation_episodes(recs: pd.DataFrame, locations: pd.DataFrame | None = None,
                            users: Sequence | None = None, n: int = 4) -> pd.DataFrame:
    """The suggestions to draw on maps, one per user: ``n`` users (or the ``users`` given).

    With ``locations``, each user's suggestion whose map window (:data:`MAP_BEFORE` to
    :data:`MAP_AFTER`) holds the most positions, and the users with the richest such
    episodes (a visible approach, not two isolated fixes); without, each user's first
    suggestion and the users with most suggestions. Ties: earliest, smallest id.
    """
    if recs.empty:
        return recs.iloc[:0].assign(positions=pd.Series(dtype="int64"))
    recs = recs.sort_values(["user_id", "ts"], kind="stable")
    if users is not None:
        recs = recs[recs["user_id"].isin(list(users))]
    if locations is None or locations.empty:
        scored = recs.assign(positions=0)
    else:
        loc = locations[locations["user_id"].isin(recs["user_id"].unique())]
        parts = []
        for user, mine in recs.groupby("user_id", sort=False):
            ts = np.sort(loc.loc[loc["user_id"] == user, "ts"].to_numpy())
            lo = np.searchsorted(ts, (mine["ts"] - MAP_BEFORE).to_numpy(), side="left")
            hi = np.searchsorted(ts, (mine["ts"] + MAP_AFTER).to_numpy(), side="right")
            parts.append(mine.assign(positions=hi - lo))
        scored = pd.concat(parts, ignore_index=True)
    counts = scored.groupby("user_id", sort=False).size().rename("suggestions")
    best = (scored.sort_values(["user_id", "positions", "ts"], ascending=[True, False, True],
                               kind="stable")
            .drop_duplicates("user_id").join(counts, on="user_id"))
    if users is not None:
        order = {u: i for i, u in enumerate(users)}
        return best.sort_values("user_id", key=lambda c: c.map(order)).reset_index(drop=True)
    best = best.sort_values(["positions", "suggestions", "user_id"],
                            ascending=[False, False, True], kind="stable")
    return best.head(n).reset_index(drop=True)


def _metres_box(lat: np.ndarray, lon: np.ndarray, min_half_m: float,
                aspect: float = 1.0) -> tuple[float, ...]:
    """A box around the points, ``aspect`` times wider than tall in metres: lat0, lat1,
    lon0, lon1."""
    lat_c, lon_c = (lat.min() + lat.max()) / 2, (lon.min() + lon.max()) / 2
    m_lat = 111_195.0
    m_lon = m_lat * max(np.cos(np.radians(lat_c)), 1e-6)
    half_y = max(min_half_m, (lat.max() - lat.min()) * m_lat / 2 * 1.15,
                 (lon.max() - lon.min()) * m_lon / 2 * 1.15 / aspect)
    half_x = half_y * aspect
    return lat_c - half_y / m_lat, lat_c + half_y / m_lat, lon_c - half_x / m_lon, lon_c + half_x / m_lon


def _recommendation_axes(ax: Axes, locations: pd.DataFrame, establishments: pd.DataFrame,
                         recs: pd.DataFrame, user_id: object, tz: str | None = None,
                         at: pd.Timestamp | None = None, legend: bool = True,
                         aspect: float = 1.0) -> None:
    """One user around one suggestion (``at``; default the user's first): trajectory from
    :data:`MAP_BEFORE` before to :data:`MAP_AFTER` after, the approach radius around the
    suggested establishment, where the suggestion fired and the ad suggested."""
    from matplotlib.patches import Ellipse

    from adanalytics.semantics import APPROACH_RADIUS_M

    mine = recs[recs["user_id"] == user_id].sort_values("ts", kind="stable")
    traj_all = locations[locations["user_id"] == user_id].sort_values("ts", kind="stable")
    if mine.empty or traj_all.empty:
        _empty(ax, f"no suggestion for user {user_id}" if mine.empty
               else f"no positions of user {user_id}")
        ax.set_title(f"user {user_id}", fontsize="medium")
        return
    at = pd.Timestamp(at) if at is not None else mine["ts"].iloc[0]
    t0, t1 = at - MAP_BEFORE, at + MAP_AFTER
    traj = traj_all[(traj_all["ts"] >= t0) & (traj_all["ts"] <= t1)]
    fired = mine[(mine["ts"] >= t0) & (mine["ts"] <= t1)]
    hit = establishments[establishments["establishment_id"].isin(fired["establishment_id"])]
    lat = np.concatenate([traj["lat"].to_numpy(float), hit["lat"].to_numpy(float)])
    lon = np.concatenate([traj["lon"].to_numpy(float), hit["lon"].to_numpy(float)])
    box = _metres_box(lat, lon, APPROACH_RADIUS_M * 1.3, aspect)
    est = establishments[establishments["lat"].between(box[0], box[1])
                         & establishments["lon"].between(box[2], box[3])]
    ax.scatter(est["lon"], est["lat"], s=12, c="#AAAAAA", marker="s", label="establishments")
    # a circle in metres is an ellipse in degrees
    m_lon = max(np.cos(np.radians((box[0] + box[1]) / 2)), 1e-6)
    for i, (_, row) in enumerate(hit.iterrows()):
        r_lat = APPROACH_RADIUS_M / 111_195.0
        ax.add_patch(Ellipse((row["lon"], row["lat"]), 2 * r_lat / m_lon, 2 * r_lat, fill=False,
                             ls="--", lw=0.8, color=RED,
                             label=f"{APPROACH_RADIUS_M:g} m approach radius" if i == 0 else None))
    ax.plot(traj["lon"], traj["lat"], "-", lw=1.2, c=BLUE, alpha=0.8, label="trajectory")
    ax.scatter(traj["lon"], traj["lat"], s=8, c=BLUE, alpha=0.8)
    if len(traj):
        ax.scatter(traj["lon"].iloc[[0]], traj["lat"].iloc[[0]], s=40, c=BLUE, marker="o",
                   edgecolors="black", zorder=4, label=f"start ({MAP_BEFORE.seconds // 60} min before)")
    ax.scatter(hit["lon"], hit["lat"], s=160, c=RED, marker="*", zorder=5,
               label="suggested establishment")
    pts = traj.merge(fired[["ts"]].drop_duplicates(), on="ts")
    ax.scatter(pts["lon"], pts["lat"], s=90, facecolors="none", edgecolors=ORANGE, lw=2,
               zorder=6, label="suggestion fired")
    for _, row in fired.iterrows():
        e = hit[hit["establishment_id"] == row["establishment_id"]]
        if e.empty:
            continue
        local = row["ts"].tz_convert(tz) if tz and row["ts"].tzinfo else row["ts"]
        ax.annotate(f"{row['establishment_id']}: ad {row['ad_id']}\n{local:%H:%M} at "
                    f"{row['distance_m']:.0f} m", (e["lon"].iloc[0], e["lat"].iloc[0]),
                    fontsize=7, xytext=(6, 6), textcoords="offset points")
    ax.set_xlim(box[2], box[3])
    ax.set_ylim(box[0], box[1])
    ax.set_aspect(1 / m_lon)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.tick_params(labelsize="x-small")
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="x-small", loc="lower left")
    local_at = at.tz_convert(tz) if tz and at.tzinfo else at
    zone = f" {tz}" if tz else ""
    ax.set_title(f"user {user_id}, {local_at:%Y-%m-%d %H:%M}{zone} "
                 f"({len(mine)} suggestion(s) in all)", fontsize="medium")


def recommendation_map(locations: pd.DataFrame, establishments: pd.DataFrame,
                       recs: pd.DataFrame, user_id: object, title: str | None = None,
                       tz: str | None = None) -> Figure:
    """Map of one user around their suggestion with the most positions nearby in time:
    trajectory, nearby establishments, the approach radius, where the suggestion fired
    and which ad."""
    fig, ax = _figure(7, 7)
    ep = recommendation_episodes(recs, locations, [user_id])
    _recommendation_axes(ax, locations, establishments, recs, user_id, tz=tz,
                         at=ep["ts"].iloc[0] if len(ep) else None)
    if title:
        fig.suptitle(title)
    return fig


def recommendation_maps(locations: pd.DataFrame, establishments: pd.DataFrame,
                        recs: pd.DataFrame, users: Sequence | None = None, n: int = 4,
                        tz: str | None = None, title: str | None = None) -> Figure:
    """Maps of a few users, each around one suggestion (see
    :func:`recommendation_episodes` for which, and :func:`recommendation_map`)."""
    episodes = recommendation_episodes(recs, locations, users, n)
    # landscape panels (slides are wider than tall)
    fig, axes = _panels(len(episodes), ncols=2, panel_w=6.6, panel_h=4.6)
    if episodes.empty:
        _empty(axes[0], "no suggestion")
    for i, (ax, ep) in enumerate(zip(axes, episodes.itertuples(), strict=False)):
        _recommendation_axes(ax, locations, establishments, recs, ep.user_id, tz=tz,
                             at=ep.ts, legend=(i == 0), aspect=1.5)
    fig.suptitle(title or "Users whose approach to an establishment produced a suggestion "
                 f"(trajectory {MAP_BEFORE.seconds // 60} min before to "
                 f"{MAP_AFTER.seconds // 60} min after)")
    return fig


def stream_progress(history: pd.DataFrame, title: str = "Real-time job: counts by micro-batch") -> Figure:
    """Cumulative positions processed and suggestions emitted by micro-batch of a live
    run; ``history`` has one row per batch with ``events`` and ``suggestions`` (and
    optionally ``elapsed_s``, seconds since the start)."""
    fig, ax = _figure(9, 4.2)
    if history.empty:
        _empty(ax, "no micro-batch yet")
        ax.set_title(title)
        return fig
    timed = "elapsed_s" in history.columns
    x = np.r_[0, history["elapsed_s"] if timed else np.arange(1, len(history) + 1)]
    events = np.r_[0, history["events"].cumsum()]
    suggestions = np.r_[0, history["suggestions"].cumsum()]
    ax.step(x, events, "-o", where="post", ms=3, color=BLUE, label="positions processed")
    ax.set_ylabel("positions (cumulative)")
    ax.set_xlabel("seconds since the job started" if timed else "micro-batch")
    ax2 = ax.twinx()
    ax2.step(x, suggestions, "-s", where="post", ms=3, color=RED, label="suggestions emitted")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("suggestions (cumulative)")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left")
    ax.set_title(title)
    return fig
