"""A self-contained HTML report: every chart inlined as PNG, result previews, timings."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


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


def render(title: str, sections: list[Section], intro: str = "") -> str:
    """The report as one HTML string (no external resources)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}",
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}h2{border-bottom:2px solid #4C72B0}",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        for fig in s.figures:
            parts.append(f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{_png(fig)}'>")
        for caption, df in s.tables:
            parts.append(f"<h4>{html.escape(caption)}</h4>")
            parts.append(df.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: str | Path, title: str, sections: list[Section], intro: str = "") -> Path:
    """Write the report to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(title, sections, intro), encoding="utf-8")
    return p
