"""Geo-referenced maps of users whose approach produced a suggestion (SPEC §5).

For each chosen user: the trajectory (positions in time order), the establishments near
it (closer than the approach radius to some position), the ones that were suggested, and
the points where a suggestion fired, with the ad, distance and time.

- :func:`render_html`: an interactive Bokeh map (Web Mercator, OpenStreetMap-style tiles
  when online; pan, zoom, hover, click a legend entry to hide a user). The Bokeh library
  is inlined, so the file opens offline (without the tile background).
- :func:`render_png`: static small multiples (matplotlib, one panel per user, metres to
  scale) for slides.
- :func:`make_maps`: both, for the users with the most suggestions (or chosen ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics import semantics as sem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Web Mercator sphere radius (EPSG:3857), for the tile layer's coordinates.
_MERCATOR_R = 6_378_137.0
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
EST_COLOR = "#8a8a8a"
HIT_COLOR = "#d62728"


@dataclass
class MapData:
    """What the maps show: positions, suggestions (with the position where each fired)
    and nearby establishments of the chosen users."""

    users: list[Any]
    positions: pd.DataFrame  # user_id, lat, lon, ts
    suggestions: pd.DataFrame  # user_id, establishment_id, ad_id, ts, distance_m, lat, lon
    establishments: pd.DataFrame  # establishment_id, name, category, lat, lon, user_id, suggested


@dataclass
class MapPaths:
    """Files written by :func:`make_maps`."""

    html: Path
    png: Path
    users: list[Any]


def choose_users(suggestions: pd.DataFrame, users: list[Any] | None = None,
                 max_users: int = 6) -> list[Any]:
    """``users`` as given, else the users with the most suggestions (ties: smallest id)."""
    if users:
        return list(users)[:max_users] if max_users else list(users)
    if suggestions.empty:
        return []
    counts = suggestions.groupby("user_id").size().rename("n").reset_index()
    counts["_key"] = counts["user_id"].astype(str)
    counts = counts.sort_values(["n", "_key"], ascending=[False, True], kind="mergesort")
    return counts["user_id"].head(max_users).tolist()


def map_data(positions: pd.DataFrame, suggestions: pd.DataFrame, establishments: pd.DataFrame,
             users: list[Any], radius_m: float = sem.APPROACH_RADIUS_M) -> MapData:
    """Collect what the maps of ``users`` show.

    Parameters
    ----------
    positions:
        user_id, lat, lon, ts (all users; those of ``users`` are kept).
    suggestions:
        user_id, establishment_id, ad_id, ts, distance_m (the job's or the batch output).
    establishments:
        establishment_id, name, category, lat, lon.
    users:
        The users to show.
    radius_m:
        Establishments closer than this to some position of a user are "nearby".
    """
    from adanalytics.engines.pandas.visits import place_index

    key = {str(u) for u in users}
    pos = positions[positions["user_id"].astype(str).isin(key)].copy()
    pos["user_id"] = pos["user_id"].astype(str)
    pos["ts"] = pd.to_datetime(pos["ts"], utc=True)
    pos = pos.sort_values(["user_id", "ts", "lat", "lon"], kind="mergesort").reset_index(drop=True)
    sug = suggestions[suggestions["user_id"].astype(str).isin(key)].copy()
    sug["user_id"] = sug["user_id"].astype(str)
    sug["establishment_id"] = sug["establishment_id"].astype(str)
    sug["ts"] = pd.to_datetime(sug["ts"], utc=True)
    # where each suggestion fired: the user's (last) position at that instant
    at = pos.drop_duplicates(["user_id", "ts"], keep="last")[["user_id", "ts", "lat", "lon"]]
    sug = sug.merge(at, on=["user_id", "ts"], how="left").sort_values(["user_id", "ts"], kind="mergesort")

    est = establishments.assign(establishment_id=establishments["establishment_id"].astype(str))
    near = pd.DataFrame(columns=["user_id", "establishment_id"])
    if len(pos) and len(est):
        idx = place_index(est, radius_m)
        qi, pi, _ = idx.cells.within(pos["lat"].to_numpy(np.float64), pos["lon"].to_numpy(np.float64))
        near = pd.DataFrame({"user_id": pos["user_id"].to_numpy()[qi],
                             "establishment_id": idx.establishment_id[pi]}).drop_duplicates()
    hits = sug[["user_id", "establishment_id"]].drop_duplicates()
    near = pd.concat([near, hits], ignore_index=True).drop_duplicates()
    near = near.merge(hits.assign(suggested=True), on=["user_id", "establishment_id"], how="left")
    near["suggested"] = near["suggested"].astype("boolean").fillna(False).astype(bool)
    cols = [c for c in ("establishment_id", "name", "category", "lat", "lon") if c in est.columns]
    est_u = near.merge(est[cols], on="establishment_id", how="inner")
    return MapData(users=[str(u) for u in users], positions=pos,
                   suggestions=sug.reset_index(drop=True), establishments=est_u)


def _mercator(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.clip(np.asarray(lat, dtype=np.float64), -85.05112878, 85.05112878)
    x = np.radians(np.asarray(lon, dtype=np.float64)) * _MERCATOR_R
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * _MERCATOR_R
    return x, y


def render_html(data: MapData, path: str | Path, title: str = "Real-time suggestions",
                tiles: bool = True) -> Path:
    """Write the interactive Bokeh map of ``data`` to ``path`` (standalone HTML)."""
    from bokeh.io import save
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = figure(title=title, x_axis_type="mercator", y_axis_type="mercator",
               width=1000, height=750, tools="pan,wheel_zoom,box_zoom,reset,save",
               active_scroll="wheel_zoom", match_aspect=True)
    if tiles:
        try:
            import xyzservices.providers as xyz

            p.add_tile(xyz.OpenStreetMap.Mapnik)
        except Exception:  # no tile provider package: plain axes still georeferenced
            pass
    fmt = "%Y-%m-%d %H:%M:%S"
    est = data.establishments.drop_duplicates("establishment_id")
    if len(est):
        ex, ey = _mercator(est["lat"], est["lon"])
        src = ColumnDataSource({
            "x": ex, "y": ey, "id": est["establishment_id"].astype(str),
            "name": est.get("name", est["establishment_id"]).astype(str),
            "category": est.get("category", pd.Series("", index=est.index)).astype(str),
            "color": np.where(data.establishments.groupby("establishment_id")["suggested"]
                              .any().reindex(est["establishment_id"]).to_numpy(), HIT_COLOR, EST_COLOR),
        })
        r = p.scatter("x", "y", source=src, marker="square", size=9, color="color", alpha=0.8,
                      legend_label="establishments (red: suggested)")
        p.add_tools(HoverTool(renderers=[r], tooltips=[("establishment", "@id @name"),
                                                       ("category", "@category")]))
    for i, user in enumerate(data.users):
        color = _PALETTE[i % len(_PALETTE)]
        tr = data.positions[data.positions["user_id"] == user]
        if len(tr):
            x, y = _mercator(tr["lat"], tr["lon"])
            src = ColumnDataSource({"x": x, "y": y, "ts": tr["ts"].dt.strftime(fmt)})
            p.line("x", "y", source=src, color=color, line_width=2, alpha=0.7,
                   legend_label=f"user {user}")
            r = p.scatter("x", "y", source=src, size=4, color=color, alpha=0.7,
                          legend_label=f"user {user}")
            p.add_tools(HoverTool(renderers=[r], tooltips=[("user", user), ("ts (UTC)", "@ts")]))
        sg = data.suggestions[(data.suggestions["user_id"] == user) & data.suggestions["lat"].notna()]
        if len(sg):
            x, y = _mercator(sg["lat"], sg["lon"])
            src = ColumnDataSource({
                "x": x, "y": y, "ts": sg["ts"].dt.strftime(fmt), "ad": sg["ad_id"].astype(str),
                "est": sg["establishment_id"].astype(str),
                "d": sg["distance_m"].astype(float).round(1)})
            r = p.scatter("x", "y", source=src, marker="star", size=18, color=color,
                          line_color="black", legend_label=f"user {user}")
            p.add_tools(HoverTool(renderers=[r], tooltips=[
                ("suggestion", "ad @ad for @est"), ("distance", "@d m"), ("ts (UTC)", "@ts")]))
    p.legend.click_policy = "hide"
    p.legend.location = "top_left"
    p.xaxis.axis_label = "longitude"
    p.yaxis.axis_label = "latitude"
    save(p, filename=str(path), resources=INLINE, title=title)
    return path


def user_figure(data: MapData, title: str | None = None, cols: int = 3) -> Figure:
    """Static small multiples: one panel per user, axes in degrees at a true scale."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = max(1, len(data.users))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 4.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(data.users):]:
        ax.set_axis_off()
    for i, user in enumerate(data.users):
        ax = axes[i]
        color = _PALETTE[i % len(_PALETTE)]
        tr = data.positions[data.positions["user_id"] == user]
        est = data.establishments[data.establishments["user_id"] == user]
        sg = data.suggestions[(data.suggestions["user_id"] == user) & data.suggestions["lat"].notna()]
        quiet = est[~est["suggested"]]
        hit = est[est["suggested"]]
        ax.scatter(quiet["lon"], quiet["lat"], s=14, marker="s", c=EST_COLOR, alpha=0.6, zorder=1)
        ax.scatter(hit["lon"], hit["lat"], s=40, marker="s", c=HIT_COLOR, zorder=2)
        ax.plot(tr["lon"], tr["lat"], "-", lw=1.0, c=color, alpha=0.7, zorder=3)
        ax.scatter(tr["lon"], tr["lat"], s=5, c=color, alpha=0.7, zorder=3)
        ax.scatter(sg["lon"], sg["lat"], s=150, marker="*", c=color, edgecolors="black",
                   linewidths=0.6, zorder=4)
        for row in sg.drop_duplicates("establishment_id").head(6).itertuples(index=False):
            ax.annotate(f"{row.ad_id} · {row.distance_m:.0f} m", (row.lon, row.lat), fontsize=6,
                        xytext=(4, 4), textcoords="offset points")
        lat0 = float(tr["lat"].mean()) if len(tr) else 0.0
        ax.set_aspect(1 / max(math.cos(math.radians(lat0)), 1e-6))
        ax.set_title(f"user {user}: {len(sg)} suggestion(s)", fontsize=9)
        ax.tick_params(labelsize=6)
        ax.ticklabel_format(useOffset=False)
        _scale_bar(ax, lat0)
    handles = [
        Line2D([], [], color="#555555", marker=".", lw=1, label="trajectory"),
        Line2D([], [], color=EST_COLOR, marker="s", lw=0, label="nearby establishment"),
        Line2D([], [], color=HIT_COLOR, marker="s", lw=0, label="suggested establishment"),
        Line2D([], [], color="#555555", marker="*", markersize=11, markeredgecolor="black",
               lw=0, label="suggestion fired (ad · distance)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle(title or "Users whose approach produced a suggestion")
    return fig


def _scale_bar(ax: Any, lat0: float) -> None:
    """A 500 m scale bar in the lower-left corner (1 deg lon = cos(lat) deg of arc)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    m_per_deg = sem.EARTH_RADIUS_M * math.pi / 180 * max(math.cos(math.radians(lat0)), 1e-6)
    span_m = (x1 - x0) * m_per_deg
    length = next((v for v in (50, 100, 200, 500, 1000, 2000, 5000, 10000) if v >= span_m / 6), 10000)
    dx = length / m_per_deg
    xs = x0 + 0.05 * (x1 - x0)
    ys = y0 + 0.05 * (y1 - y0)
    ax.plot([xs, xs + dx], [ys, ys], c="black", lw=2)
    ax.text(xs + dx / 2, ys + 0.015 * (y1 - y0), f"{length:g} m", ha="center", va="bottom", fontsize=6)


def render_png(data: MapData, path: str | Path, title: str | None = None) -> Path:
    """Write the static small-multiples map of ``data`` (PNG, 120 dpi)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    user_figure(data, title).savefig(path, dpi=120)
    return path


def make_maps(positions: pd.DataFrame, suggestions: pd.DataFrame,
              establishments: pd.DataFrame, out: str | Path, *, users: list[Any] | None = None,
              max_users: int = 6, radius_m: float = sem.APPROACH_RADIUS_M,
              name: str = "suggestions_map", title: str | None = None) -> MapPaths:
    """Interactive HTML and static PNG maps of the users with the most suggestions.

    Parameters
    ----------
    positions:
        user_id, lat, lon, ts: the trajectories (the stream's positions or a dataset's
        locations).
    suggestions:
        user_id, establishment_id, ad_id, ts, distance_m.
    establishments:
        establishment_id, name, category, lat, lon.
    out:
        Directory for ``NAME.html`` and ``NAME.png``.
    users:
        Users to show (default: the ``max_users`` with the most suggestions).
    """
    chosen = choose_users(suggestions, users, max_users)
    data = map_data(positions, suggestions, establishments, chosen, radius_m)
    out = Path(out)
    t = title or f"Suggestions fired for {len(chosen)} user(s)"
    html = render_html(data, out / f"{name}.html", title=t)
    png = render_png(data, out / f"{name}.png", title=t)
    return MapPaths(html=html, png=png, users=data.users)


def positions_from_redis(client: Any, stream: str = "positions", users: list[Any] | None = None,
                         count: int = 10_000) -> pd.DataFrame:
    """The valid positions of a stream (optionally of some users): user_id, lat, lon, ts."""
    from adanalytics.stream.messages import parse_entries

    keep = {str(u) for u in users} if users else None
    parts = []
    cursor = "-"
    while True:
        chunk = client.xrange(stream, cursor, "+", count=count)
        if not chunk:
            break
        cols = pd.DataFrame(parse_entries(chunk))
        cols = cols[cols["rule"].isna()]
        if keep is not None:
            cols = cols[cols["user_id"].isin(keep)]
        parts.append(cols[["user_id", "lat", "lon", "ts_ms"]])
        last = chunk[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        if len(chunk) < count:
            break
    if not parts:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "lat": pd.Series(dtype=float),
                             "lon": pd.Series(dtype=float),
                             "ts": pd.Series(dtype="datetime64[ns, UTC]")})
    df = pd.concat(parts, ignore_index=True)
    df["ts"] = pd.to_datetime(df.pop("ts_ms").astype(np.int64), unit="ms", utc=True)
    return df


def suggestions_from_redis(client: Any, stream: str = "suggestions",
                           count: int = 10_000) -> pd.DataFrame:
    """The entries of a suggestions stream as a frame (ids as text)."""
    rows = []
    cursor = "-"
    while True:
        chunk = client.xrange(stream, cursor, "+", count=count)
        for eid, f in chunk:
            f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                 for k, v in f.items()}
            rows.append({"user_id": f.get("user_id"), "establishment_id": f.get("establishment_id"),
                         "ad_id": f.get("ad_id"), "ts": int(f.get("ts", 0)),
                         "distance_m": float(f.get("distance_m", "nan")),
                         "suggestion_id": eid.decode() if isinstance(eid, bytes) else eid,
                         "source_id": f.get("source_id")})
        if len(chunk) < count:
            break
        last = chunk[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))
    df = pd.DataFrame(rows, columns=["user_id", "establishment_id", "ad_id", "ts", "distance_m",
                                     "suggestion_id", "source_id"])
    df["ts"] = pd.to_datetime(df["ts"].astype(np.int64), unit="ms", utc=True)
    return df
