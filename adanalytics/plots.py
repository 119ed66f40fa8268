"""Charts and maps shared by the notebooks, the HTML report and the demo.

Every function takes a pandas result of the matching analysis (``aa.to_pandas``) and
returns a matplotlib Figure with title, axis labels, units and the time zone noted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adanalytics.semantics import PERIOD_NAMES, WEEKDAYS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 9.0, height: float = 4.5) -> tuple[Figure, object]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def top_campaigns_ctr(ctr: pd.DataFrame, top_n: int = 10, min_views: int = 100,
                      title: str = "Best campaigns by CTR") -> Figure:
    """Campaigns ranked by the Wilson lower bound of CTR (noise does not win), with
    their 95 % interval; campaigns with fewer than ``min_views`` views are left out."""
    df = ctr[ctr["views"] >= min_views].nlargest(top_n, "ctr_low").iloc[::-1]
    fig, ax = _figure(9, 0.45 * max(len(df), 4) + 1.5)
    y = np.arange(len(df))
    ax.barh(y, df["ctr"] * 100, color="#4C72B0", alpha=0.8, label="CTR")
    ax.errorbar(df["ctr"] * 100, y, xerr=[(df["ctr"] - df["ctr_low"]) * 100,
                                          (df["ctr_high"] - df["ctr"]) * 100],
                fmt="none", ecolor="black", capsize=3, label="Wilson 95 % interval")
    ax.set_yticks(y, df["campaign_id"].astype(str))
    ax.set_xlabel("click-through rate (%)")
    ax.set_ylabel("campaign")
    ax.set_title(f"{title} (ranked by Wilson lower bound, ≥ {min_views:,} views)")
    ax.legend(loc="lower right")
    return fig


def top_establishments(visits: pd.DataFrame, top_n: int = 10,
                       title: str = "Most visited establishments", names: pd.Series | None = None) -> Figure:
    """Horizontal bars of the most visited establishments (visits and distinct visitors)."""
    df = visits.nlargest(top_n, "visits").iloc[::-1]
    fig, ax = _figure(9, 0.45 * max(len(df), 4) + 1.5)
    y = np.arange(len(df))
    labels = df["establishment_id"].astype(str)
    if names is not None:
        labels = labels + " " + df["establishment_id"].map(names).fillna("").astype(str)
    ax.barh(y - 0.2, df["visits"], height=0.4, label="visits (records < 50 m)")
    ax.barh(y + 0.2, df["visitors"], height=0.4, label="distinct visitors")
    ax.set_yticks(y, labels)
    ax.set_xlabel("count")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


def top_attribution(attribution: pd.DataFrame, top_n: int = 10, min_visits: int = 20,
                    title: str = "Share of visits following an ad interaction (≤ 6 h)") -> Figure:
    """Establishments with the highest attributed share (at least ``min_visits`` visits)."""
    df = attribution[attribution["visits"] >= min_visits].nlargest(top_n, "ratio").iloc[::-1]
    fig, ax = _figure(9, 0.45 * max(len(df), 4) + 1.5)
    y = np.arange(len(df))
    ax.barh(y, df["ratio"] * 100, color="#55A868")
    for yi, (_, row) in zip(y, df.iterrows(), strict=True):
        ax.text(row["ratio"] * 100, yi, f" {row['attributed_visits']:,}/{row['visits']:,}", va="center")
    ax.set_yticks(y, df["establishment_id"].astype(str))
    ax.set_xlabel("attributed visits (%)")
    ax.set_title(f"{title}, ≥ {min_visits} visits")
    return fig


def category_hour_heatmap(hourly: pd.DataFrame, tz: str,
                          title: str = "Interactions by ad category and hour") -> Figure:
    """Heatmap: ad category x local hour, colour = interactions."""
    grid = hourly.groupby(["category", "hour"])["interactions"].sum().unstack("hour", fill_value=0)
    fig, ax = _figure(11, 0.4 * max(len(grid), 4) + 1.5)
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(24), [str(h) for h in range(24)])
    ax.set_yticks(range(len(grid)), grid.index.astype(str))
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="interactions")
    return fig


def category_hour_lines(hourly: pd.DataFrame, tz: str,
                        title: str = "Share of each category's interactions by hour") -> Figure:
    """One line per category: share of its interactions in each local hour."""
    grid = hourly.groupby(["category", "hour"])["interactions"].sum().unstack("category", fill_value=0)
    share = grid / grid.sum().replace(0, np.nan)
    fig, ax = _figure()
    for cat in share.columns:
        ax.plot(share.index, share[cat] * 100, label=str(cat))
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("share of the category's interactions (%)")
    ax.set_xticks(range(0, 24, 2))
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)
    return fig


def user_profile_bars(profile: pd.DataFrame, users: list, slot: str,
                      title: str | None = None) -> Figure:
    """Stacked bars per (user, slot): share of each category. ``slot`` is ``period`` or
    ``weekday``."""
    count = "interactions" if "interactions" in profile.columns else "visits"
    order = list(PERIOD_NAMES) if slot == "period" else list(range(7))
    labels = list(PERIOD_NAMES) if slot == "period" else list(WEEKDAYS)
    cats = sorted(profile["category"].astype(str).unique())
    fig, axes_ = _figure(3.2 * max(len(users), 1), 4)
    fig.delaxes(axes_)
    axes = fig.subplots(1, max(len(users), 1), sharey=True, squeeze=False)[0]
    cmap = __import__("matplotlib").colormaps["tab20"]
    for ax, user in zip(axes, users, strict=False):
        sub = profile[profile["user_id"] == user]
        table = sub.pivot_table(index=slot, columns="category", values="share", aggfunc="sum").reindex(order).fillna(0)
        bottom = np.zeros(len(order))
        for i, cat in enumerate(cats):
            vals = table[cat].to_numpy() if cat in table.columns else np.zeros(len(order))
            ax.bar(range(len(order)), vals * 100, bottom=bottom, color=cmap(i % 20), label=cat)
            bottom += vals * 100
        ax.set_xticks(range(len(order)), labels, rotation=45)
        ax.set_title(f"user {user}")
    axes[0].set_ylabel(f"share of {count} (%)")
    axes[-1].legend(fontsize="x-small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(title or f"Category profile by {slot}")
    return fig


def recommendation_map(locations: pd.DataFrame, establishments: pd.DataFrame,
                       recs: pd.DataFrame, user_id: object, title: str | None = None) -> Figure:
    """Static map of one user: trajectory, nearby establishments, where suggestions fired."""
    traj = locations[locations["user_id"] == user_id].sort_values("ts")
    fired = recs[recs["user_id"] == user_id]
    fig, ax = _figure(7, 7)
    pad = 0.01
    box = (traj["lat"].min() - pad, traj["lat"].max() + pad, traj["lon"].min() - pad, traj["lon"].max() + pad)
    est = establishments[establishments["lat"].between(box[0], box[1]) & establishments["lon"].between(box[2], box[3])]
    ax.scatter(est["lon"], est["lat"], s=12, c="#999999", marker="s", label="establishments")
    ax.plot(traj["lon"], traj["lat"], "-", lw=0.8, c="#4C72B0", alpha=0.7, label="trajectory")
    hit = est[est["establishment_id"].isin(fired["establishment_id"])]
    ax.scatter(hit["lon"], hit["lat"], s=60, c="#C44E52", marker="*", label="suggested establishment")
    pts = traj.merge(fired[["ts"]].drop_duplicates(), on="ts")
    ax.scatter(pts["lon"], pts["lat"], s=40, facecolors="none", edgecolors="#DD8452", lw=1.5,
               label="suggestion fired")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_aspect(1 / np.cos(np.radians(traj["lat"].mean() if len(traj) else 0)))
    ax.set_title(title or f"User {user_id}: approaches that produced a suggestion")
    ax.legend(fontsize="small", loc="best")
    return fig


def save(fig: Figure, path: str) -> str:
    """Save a figure as PNG (100 dpi) and return the path."""
    fig.savefig(path, dpi=100)
    return path
