"""A self-contained HTML report of the seven questions: every chart inlined as PNG, the
tables behind them, timings (``adanalytics report`` and ``adanalytics demo``).

Two ways in:

- from a dataset: :func:`build_report` with ``data=`` opens it on an engine, runs every
  analysis (:func:`compute_results`) and draws the charts;
- from results already computed: ``results=`` reads the files ``adanalytics run ... --out``
  wrote (``ctr_by_total.parquet`` ...; :func:`load_results`); with ``data=`` too, the maps
  (establishments, trajectories) are drawn from the dataset without re-running anything.

The charts are the notebooks' (:mod:`adanalytics.plots`); the file loads nothing from
anywhere (no script, no stylesheet, no web font).
"""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from adanalytics.semantics import DEFAULT_TZ

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.figure import Figure

    from adanalytics.dataset import Dataset

#: Result name -> (analysis, by): every result a report draws on (the file stems of
#: ``adanalytics run``).
RESULTS: dict[str, tuple[str, str | None]] = {
    "ctr_by_total": ("ctr", "total"),
    "ctr_by_month": ("ctr", "month"),
    "visits_by_total": ("visits", "total"),
    "visits_by_month": ("visits", "month"),
    "attribution_by_total": ("attribution", "total"),
    "attribution_by_month": ("attribution", "month"),
    "category_hourly_by_total": ("category_hourly", "total"),
    "category_hourly_by_month": ("category_hourly", "month"),
    "interaction_profile": ("interaction_profile", None),
    "preferred_ad_category": ("preferred_ad_category", None),
    "visit_profile": ("visit_profile", None),
    "preferred_establishment_category": ("preferred_establishment_category", None),
    "recommendations": ("recommendations", None),
}


@dataclass
class Section:
    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _anchor(i: int) -> str:
    return f"s{i + 1}"


def _format_table(df: pd.DataFrame) -> str:
    def fmt(x: Any) -> str:
        if isinstance(x, float):
            return "" if pd.isna(x) else f"{x:.4g}"
        return str(x)

    return df.to_html(index=False, border=0, formatters={c: fmt for c in df.columns},
                      escape=True, na_rep="")


def render(title: str, sections: list[Section], intro: str = "") -> str:
    """The report as one HTML string (no external resources)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}",
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}h2{border-bottom:2px solid #4C72B0}",
        "nav ol{list-style:none;padding-left:0}nav li{margin:.2em 0}",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    if len(sections) > 1:
        parts.append("<nav><ol>" + "".join(
            f"<li><a href='#{_anchor(i)}'>{html.escape(s.title)}</a></li>"
            for i, s in enumerate(sections)) + "</ol></nav>")
    for i, s in enumerate(sections):
        parts.append(f"<h2 id='{_anchor(i)}'>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        for fig in s.figures:
            label = fig.texts[0].get_text() if fig.texts else s.title
            if not fig.texts and fig.axes and fig.axes[0].get_title():
                label = fig.axes[0].get_title()
            parts.append(f"<img alt='{html.escape(label, quote=True)}' "
                         f"src='data:image/png;base64,{_png(fig)}'>")
        for caption, df in s.tables:
            parts.append(f"<h4>{html.escape(caption)}</h4>")
            parts.append(_format_table(df))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: str | Path, title: str, sections: list[Section], intro: str = "") -> Path:
    """Write the report to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(title, sections, intro), encoding="utf-8")
    return p


# --- results --------------------------------------------------------------------------------
def compute_results(ds: Dataset, names: list[str] | None = None,
                    on_progress: Callable[[str, float], None] | None = None) -> dict[str, pd.DataFrame]:
    """Run the analyses behind the report on ``ds`` and collect them into pandas."""
    from adanalytics import to_pandas

    out = {}
    for name in names or list(RESULTS):
        analysis, by = RESULTS[name]
        t0 = time.perf_counter()
        out[name] = to_pandas(ds.run(analysis, by=by or "total"))
        if on_progress is not None:
            on_progress(name, time.perf_counter() - t0)
    return out


def load_results(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The results ``adanalytics run ... --out DIR`` wrote (``NAME.parquet``, else
    ``NAME.csv``); names missing from the directory are left out."""
    root = Path(results_dir)
    if not root.is_dir():
        msg = f"results directory not found: {root}"
        raise FileNotFoundError(msg)
    out: dict[str, pd.DataFrame] = {}
    for name in RESULTS:
        pq, csv = root / f"{name}.parquet", root / f"{name}.csv"
        if pq.exists():
            out[name] = pd.read_parquet(pq)
        elif csv.exists():
            df = pd.read_csv(csv)
            if "ts" in df.columns:
                df["ts"] = pd.to_datetime(df["ts"], utc=True)
            out[name] = df
    if not out:
        msg = (f"no result files in {root} (expected names such as ctr_by_total.parquet: "
               "run 'adanalytics run all --by total' and '--by month' with this --out)")
        raise FileNotFoundError(msg)
    return out


# --- sections -------------------------------------------------------------------------------
def build_sections(frames: dict[str, pd.DataFrame], tz: str = DEFAULT_TZ, *,
                   establishments: pd.DataFrame | None = None,
                   campaigns: pd.DataFrame | None = None,
                   locations: Callable[[list], pd.DataFrame] | pd.DataFrame | None = None,
                   top_n: int = 10, min_views: int | str = "auto", min_visits: int | str = "auto",
                   n_users: int = 4) -> list[Section]:
    """One section per question with the notebooks' charts and tables, drawn from the
    results present in ``frames`` (a question without its results says so).

    ``locations`` (a frame, or a function of a list of users returning their records)
    and ``establishments`` feed the maps; without them the maps are left out.
    """
    from adanalytics import plots
    from adanalytics.questions import QUESTIONS

    cnames = campaigns.set_index("campaign_id")["name"] if campaigns is not None else None
    enames = (establishments.set_index("establishment_id")["name"]
              if establishments is not None else None)
    sections = []

    def section(number: int, text: str) -> Section:
        s = Section(f"{number}. {QUESTIONS[number - 1].title}", text)
        sections.append(s)
        return s

    def missing(s: Section, *names: str) -> bool:
        absent = [n for n in names if n not in frames]
        if absent:
            s.text += f" (not drawn: no {', '.join(absent)} result)"
        return bool(absent)

    short = min(top_n, 5)
    s = section(1, "Click-through rate per campaign, ranked by the lower bound of its Wilson 95 % "
                   "interval among campaigns with enough views.")
    if not missing(s, "ctr_by_total"):
        s.figures.append(plots.top_campaigns_ctr(frames["ctr_by_total"], top_n, min_views, names=cnames))
        s.tables.append(("best campaigns, whole period", plots.rank_campaigns(
            frames["ctr_by_total"], top_n, min_views, names=cnames)))
    if "ctr_by_month" in frames:
        s.figures.append(plots.top_campaigns_ctr_by_month(frames["ctr_by_month"], short, min_views, tz=tz))
        s.tables.append(("top 3 campaigns per month", plots.rank_campaigns(
            frames["ctr_by_month"], 3, min_views, names=cnames)))

    s = section(2, "Visits (location records closer than 50 m) and distinct visitors per "
                   "establishment.")
    if not missing(s, "visits_by_total"):
        vt = frames["visits_by_total"]
        s.figures.append(plots.top_establishments(vt, top_n, names=enames))
        s.tables.append(("most visited, whole period", plots.rank_establishments(vt, top_n, names=enames)))
        if establishments is not None:
            s.figures.append(plots.establishment_map(establishments, vt, top_n))
    if "visits_by_month" in frames:
        s.figures.append(plots.top_establishments_by_month(frames["visits_by_month"], short, tz=tz))

    s = section(3, "Share of each establishment's visits that followed, within 6 h, an "
                   "interaction of the visitor with one of its ads.")
    if not missing(s, "attribution_by_month"):
        am = frames["attribution_by_month"]
        s.figures.append(plots.top_attribution_by_month(am, short, min_visits, tz=tz))
        s.tables.append(("top 3 per month", plots.rank_attribution(am, 3, min_visits, names=enames)))
    if "attribution_by_total" in frames:
        s.figures.append(plots.top_attribution(frames["attribution_by_total"], top_n, min_visits,
                                               names=enames))

    s = section(4, f"Interactions per ad category and local hour ({tz}).")
    if not missing(s, "category_hourly_by_total"):
        ht = frames["category_hourly_by_total"]
        s.figures += [plots.category_hour_heatmap(ht, tz), plots.category_hour_lines(ht, tz)]
        s.tables.append(("categories and their peak hour", plots.category_peaks(ht)))
    if "category_hourly_by_month" in frames:
        hm = frames["category_hourly_by_month"]
        s.figures += [plots.category_hour_heatmaps_by_month(hm, tz),
                      plots.category_hour_lines_by_month(hm, tz)]

    for number, prof, pref, slot in ((5, "interaction_profile", "preferred_ad_category", "period"),
                                     (6, "visit_profile", "preferred_establishment_category",
                                      "weekday")):
        what = "period of the day" if slot == "period" else "day of the week"
        s = section(number, f"Per user and {what}: the distribution over categories and the "
                            "preferred category (the most active users shown).")
        if missing(s, prof, pref):
            continue
        users = plots.most_active_users(frames[prof], n_users)
        s.figures += [plots.user_profile_bars(frames[prof], users, slot, tz=tz),
                      plots.preferred_category_chart(frames[pref], users, slot, tz=tz)]
        s.tables += [("preferred category of the users shown",
                      plots.preferred_table(frames[pref], users, slot)),
                     ("users preferring each category", plots.preferred_counts(frames[pref], slot))]

    s = section(7, "Suggestions the real-time rule emits (batch form): approach within 500 m, "
                   "closing in, an active ad, at most one per user and establishment per hour.")
    if not missing(s, "recommendations"):
        recs = frames["recommendations"]
        s.text += (f" {len(recs):,} suggestions to {recs['user_id'].nunique():,} users for "
                   f"{recs['establishment_id'].nunique():,} establishments.")
        s.tables.append(("first suggestions", recs.head(top_n)))
        if len(recs) and establishments is not None and locations is not None:
            candidates = recs["user_id"].value_counts().index[: 5 * n_users].tolist()
            loc = locations(candidates) if callable(locations) else locations
            s.figures.append(plots.recommendation_maps(loc, establishments, recs, n=n_users, tz=tz))
    return sections


def build_report(out: str | Path, *, data: str | None = None, results: str | Path | None = None,
                 engine: str = "pandas", tz: str = DEFAULT_TZ,
                 connection: dict[str, Any] | None = None,
                 title: str = "adanalytics report", top_n: int = 10,
                 on_progress: Callable[[str, float], None] | None = None) -> Path:
    """Write the report of a dataset (``data``: every analysis is run on ``engine``) or of
    results (``results``; with ``data`` too, the maps are drawn from the dataset)."""
    import adanalytics as aa
    from adanalytics import notebooks as nbh

    if data is None and results is None:
        msg = "give a dataset (data=) or a results directory (results=)"
        raise ValueError(msg)
    t0 = time.perf_counter()
    frames = load_results(results) if results is not None else None
    ds = None
    try:
        extra: dict[str, Any] = {}
        if data is not None:
            ds = aa.open_dataset(data, engine=engine, tz=tz, **(connection or {}))
            if frames is None:
                ds.persist()
                frames = compute_results(ds, on_progress=on_progress)
            dataset = ds
            extra = {"establishments": nbh.small_table(ds, "establishments"),
                     "campaigns": nbh.small_table(ds, "campaigns"),
                     "locations": lambda users: nbh.user_locations(dataset, users)}
        assert frames is not None
        sections = build_sections(frames, tz, top_n=top_n, **extra)
    finally:
        if ds is not None:
            ds.close()
    source = f"dataset {data} on {engine}" if results is None else f"results in {results}"
    if results is not None and data is not None:
        source += f" (maps from {data})"
    intro = (f"The seven questions from {source}; calendar buckets in {tz}; "
             f"{time.perf_counter() - t0:.1f} s to build.")
    return write(out, title, sections, intro)
