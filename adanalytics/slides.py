"""Executed notebooks as reveal.js slide decks that render offline (``adanalytics slides``).

nbconvert's reveal template loads reveal.js, require.js, jQuery, MathJax and Font Awesome
from CDNs; a deck made by nbconvert alone shows nothing without a network. Here every such
URL points into an ``assets/`` directory written beside the decks, filled from the npm
packages pinned in ``slides/package.json`` (installed by ``bootstrap.sh``, or ``npm ci
--prefix slides``):

- ``SlidesExporter.reveal_url_prefix`` -> ``assets/reveal.js`` (reveal.js 4),
- ``HTMLExporter.require_js_url``, ``jquery_url``, ``mathjax_url`` and
  ``SlidesExporter.font_awesome_url`` -> their files under ``assets/``,
- the Mermaid module import (a CDN ``import`` the template adds) is left out, as the
  notebooks have no Mermaid diagrams; the theme is ``white``, whose fonts are local files.

Cells carry ``slideshow`` metadata (each chart cell starts a slide); cells without it get
defaults (a heading or a chart starts a slide; the parameters cells are skipped). An
option hides the code (inputs and prompts). PDF: headless Chromium prints the deck opened
with ``?print-pdf`` (reveal.js' own print layout; no browser download of any tool).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adanalytics.errors import AdAnalyticsError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import nbformat

#: The reveal.js theme (its fonts ship with reveal.js; "simple" would load Google Fonts).
THEME = "white"
#: Slide size reveal.js lays out and then scales to the window.
WIDTH, HEIGHT = 1280, 800
ASSETS = "assets"
#: Files of each npm package copied beside the decks (globs under the package directory).
ASSET_FILES: dict[str, tuple[str, ...]] = {
    "reveal.js": ("dist/reveal.js", "dist/reveal.css", "dist/reset.css", "dist/theme/*.css",
                  "dist/theme/fonts/**/*", "plugin/notes/notes.js", "plugin/notes/plugin.js",
                  "plugin/notes/speaker-view.html", "LICENSE"),
    "requirejs": ("require.js",),
    "jquery": ("dist/jquery.min.js", "LICENSE.txt"),
    "font-awesome": ("css/font-awesome.min.css", "fonts/*"),
    "mathjax": ("MathJax.js", "LICENSE", "config/TeX-AMS_CHTML-full.js", "config/Safe.js",
                "config/local/*", "extensions/**/*", "jax/input/TeX/**/*",
                "jax/output/CommonHTML/**/*", "jax/element/**/*", "fonts/HTML-CSS/TeX/woff/**/*",
                "localization/en/**/*"),
}
#: Where each CDN URL of the template points, relative to a deck.
URLS = {
    "reveal_url_prefix": f"{ASSETS}/reveal.js",
    "require_js_url": f"{ASSETS}/requirejs/require.js",
    "jquery_url": f"{ASSETS}/jquery/dist/jquery.min.js",
    "mathjax_url": f"{ASSETS}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    "font_awesome_url": f"{ASSETS}/font-awesome/css/font-awesome.min.css",
}
#: A template over nbconvert's reveal template: no Mermaid CDN import, slide-sized charts.
TEMPLATE_NAME = "adanalytics_reveal.html.j2"
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
{{ super() }}
<link rel="stylesheet" href="{{ resources.font_awesome_url }}">
<style type="text/css">
.reveal .slides section img { max-height: 600px; max-width: 100%; object-fit: contain; }
.reveal .slides section table { font-size: 15px; margin: 0 auto; }
.reveal .slides section .jp-RenderedHTMLCommon table caption { font-weight: bold; padding: 4px; }
.reveal .slides section .jp-RenderedHTMLCommon { font-size: 20px; }
.reveal .slides section h1 { font-size: 1.9em; }
.reveal .slides section h2 { font-size: 1.4em; }
</style>
{%- endblock html_head_css -%}
"""


class SlidesError(AdAnalyticsError):
    """Slides cannot be made (assets, browser or notebooks missing)."""


@dataclass
class Deck:
    """One exported deck."""

    notebook: Path  # the executed notebook
    html: Path
    pdf: Path | None = None
    slides: int = 0
    charts: int = 0


# --- assets -------------------------------------------------------------------------------
def slides_source_dir() -> Path:
    """``slides/`` of the source tree (its ``package.json`` pins the front-end packages)."""
    return Path(__file__).resolve().parents[1] / "slides"


def find_node_modules(node_modules: str | os.PathLike[str] | None = None,
                      install: bool = True) -> Path:
    """The ``node_modules`` holding the packages of :data:`ASSET_FILES`.

    Looks at ``node_modules``, then ``$ADANALYTICS_SLIDES_NODE_MODULES``, then
    ``slides/node_modules``; when none has them and ``install`` is true, runs ``npm ci``
    in ``slides/`` (the registry must be reachable) and uses the result.
    """
    candidates = [Path(p) for p in (node_modules, os.environ.get("ADANALYTICS_SLIDES_NODE_MODULES"))
                  if p]
    candidates.append(slides_source_dir() / "node_modules")
    for c in candidates:
        if all((c / pkg / "package.json").exists() for pkg in ASSET_FILES):
            return c
    src = slides_source_dir()
    npm = shutil.which("npm")
    if install and npm and (src / "package.json").exists():
        cmd = [npm, "ci" if (src / "package-lock.json").exists() else "install",
               "--no-fund", "--no-audit", "--loglevel=error"]
        done = subprocess.run(cmd, cwd=src, capture_output=True, text=True, check=False)
        target = src / "node_modules"
        if done.returncode == 0 and all((target / p / "package.json").exists() for p in ASSET_FILES):
            return target
        detail = (done.stderr or done.stdout).strip()[-800:]
        msg = f"'{' '.join(cmd)}' in {src} failed: {detail}"
        raise SlidesError(msg)
    msg = ("the slide assets (reveal.js 4, require.js, jQuery, MathJax 2, Font Awesome 4) are "
           f"not installed: run ./bootstrap.sh, or 'npm ci --prefix {src}', or point "
           "$ADANALYTICS_SLIDES_NODE_MODULES at a node_modules holding them")
    raise SlidesError(msg)


def _package_version(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((path / "package.json").read_text())["version"])
    return "?"


def install_assets(out_dir: str | os.PathLike[str], node_modules: str | os.PathLike[str] | None = None
                   ) -> Path:
    """Copy the files the decks load into ``OUT/assets`` (skipped when the same package
    versions are already there) and return that directory."""
    nm = find_node_modules(node_modules)
    target = Path(out_dir) / ASSETS
    versions = {pkg: _package_version(nm / pkg) for pkg in ASSET_FILES}
    stamp = target / "versions.json"
    if stamp.exists():
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text()) == versions:
                return target
    tmp = Path(tempfile.mkdtemp(prefix=".assets-", dir=Path(out_dir)))
    try:
        for pkg, patterns in ASSET_FILES.items():
            root = nm / pkg
            for pattern in patterns:
                matches = [p for p in root.glob(pattern) if p.is_file()]
                if not matches and "*" not in pattern:
                    msg = f"{root / pattern} is missing (npm package {pkg} {versions[pkg]})"
                    raise SlidesError(msg)
                for f in matches:
                    dest = tmp / pkg / f.relative_to(root)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest)
        (tmp / "versions.json").write_text(json.dumps(versions, indent=1))
        tmp.chmod(0o755)  # mkdtemp makes it private; a deck is read by browsers and servers
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- notebooks -> decks -------------------------------------------------------------------
def _slide_type(cell: Any) -> str | None:
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type")


def _has_chart(cell: Any) -> bool:
    return any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
               for o in cell.get("outputs", []))


def prepare(nb: nbformat.NotebookNode, hide_code: bool = False) -> nbformat.NotebookNode:
    """A copy of an executed notebook ready for slides: default slide metadata where a
    cell has none (headings and charts start slides; parameters, injected parameters and,
    with ``hide_code``, cells that show nothing are skipped), no stderr outputs (engine
    logs), no papermill error banners."""
    import copy

    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "papermill-error-cell-tag" in tags:
            continue
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        slide = _slide_type(cell)
        if tags & {"parameters", "injected-parameters"}:
            slide = "skip"
        elif slide is None:
            heading = cell.cell_type == "markdown" and cell.source.lstrip().startswith("#")
            chart = cell.cell_type == "code" and _has_chart(cell)
            slide = "slide" if heading or chart else "-"
        if hide_code and cell.cell_type == "code" and not cell.outputs and slide in ("-", "fragment"):
            slide = "skip"
        cell.metadata.setdefault("slideshow", {})["slide_type"] = slide
        cells.append(cell)
    nb.cells = cells
    return nb


def exporter(hide_code: bool = False, theme: str = THEME) -> Any:
    """nbconvert's SlidesExporter with every CDN URL pointing into ``assets/``."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    c = Config()
    c.SlidesExporter.reveal_url_prefix = URLS["reveal_url_prefix"]
    c.SlidesExporter.font_awesome_url = URLS["font_awesome_url"]
    c.SlidesExporter.reveal_theme = theme
    c.SlidesExporter.reveal_width = str(WIDTH)
    c.SlidesExporter.reveal_height = str(HEIGHT)
    c.SlidesExporter.reveal_transition = "none"
    c.SlidesExporter.reveal_number = "c/t"
    c.HTMLExporter.require_js_url = URLS["require_js_url"]
    c.HTMLExporter.jquery_url = URLS["jquery_url"]
    c.HTMLExporter.mathjax_url = URLS["mathjax_url"]
    c.HTMLExporter.jupyter_widgets_base_url = f"{ASSETS}/"
    c.HTMLExporter.widget_renderer_url = ""
    if hide_code:
        c.TemplateExporter.exclude_input = True
        c.TemplateExporter.exclude_input_prompt = True
        c.TemplateExporter.exclude_output_prompt = True
    exp = SlidesExporter(config=c, extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})])
    exp.template_file = TEMPLATE_NAME
    # not configurable, and not loaded (the template drops the Mermaid block): never a CDN
    for name in ("mermaid_js_url", "mermaid_layout_elk_js_url"):
        if exp.has_trait(name):
            setattr(exp, name, "")
    return exp


def _init_font_awesome(exp: Any) -> dict[str, Any]:
    return {"font_awesome_url": exp.font_awesome_url}


def export_deck(notebook: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                hide_code: bool = False, name: str | None = None,
                node_modules: str | os.PathLike[str] | None = None) -> Deck:
    """Export one executed notebook as ``OUT/NAME.slides.html`` (assets installed beside)."""
    import nbformat

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    install_assets(out, node_modules)
    src = Path(notebook)
    nb = prepare(nbformat.read(src, as_version=4), hide_code=hide_code)
    exp = exporter(hide_code=hide_code)
    body, _ = exp.from_notebook_node(nb, resources=_init_font_awesome(exp))
    target = out / f"{name or src.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    shown = [c for c in nb.cells if _slide_type(c) != "skip"]
    slides = sum(1 for c in shown if _slide_type(c) in ("slide", "subslide"))
    charts = sum(1 for c in shown if c.cell_type == "code" and _has_chart(c))
    return Deck(notebook=src, html=target, slides=slides, charts=charts)


def external_urls(deck_html: str) -> list[str]:
    """URLs outside the deck's directory that the page *loads* (scripts, stylesheets,
    images, imports); links a reader may click are not counted."""

    found = re.findall(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""",
                       deck_html, flags=re.IGNORECASE)
    found += re.findall(r"""\bimport\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]""", deck_html)
    found += re.findall(r"""@import\s+url\(\s*['"]?([^'")]+)""", deck_html)
    return sorted({u for u in found if re.match(r"^(?:[a-z]+:)?//", u, flags=re.IGNORECASE)
                   and not u.lower().startswith("file:")})


# --- PDF ------------------------------------------------------------------------------------
def find_chromium(executable: str | None = None) -> str:
    """Headless Chromium: ``executable``, ``$CHROMIUM``, or chromium/chrome on PATH."""
    for c in (executable, os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
              "google-chrome", "google-chrome-stable"):
        if c and (path := shutil.which(c)):
            return path
    msg = ("headless Chromium is needed for PDF: install it (apt-get install chromium, or "
           "./bootstrap.sh) or set $CHROMIUM")
    raise SlidesError(msg)


def chromium_args(profile: str | os.PathLike[str]) -> list[str]:
    """Flags for a headless Chromium that never reaches the network by itself."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}"]


#: Where a (horizontal) slide starts: nbconvert nests every slide's cells in
#: ``<section><section>...</section></section>``.
_SLIDE_START = re.compile(r"<section>\s*<section>")


def export_pdf(deck: str | os.PathLike[str], pdf: str | os.PathLike[str] | None = None,
               chromium: str | None = None, timeout: float = 180.0,
               budget_ms: int = 15_000) -> Path:
    """Print a deck to PDF: headless Chromium opens ``deck?print-pdf`` (one slide per page)."""
    exe = find_chromium(chromium)
    src = Path(deck).resolve()
    target = Path(pdf) if pdf else src.with_name(src.name.removesuffix(".slides.html") + ".pdf")
    target = target.resolve()
    # reveal.js lays the slides out as pages after loading; on a busy machine Chromium can
    # print before it has (one page only): then again, with more time
    slides = len(_SLIDE_START.findall(src.read_text(errors="replace")))
    for attempt in range(3):
        with tempfile.TemporaryDirectory(prefix="adanalytics-chromium-") as profile:
            done = _run_chromium([exe, *chromium_args(profile),
                                  "--run-all-compositor-stages-before-draw",
                                  f"--virtual-time-budget={budget_ms << attempt}",
                                  "--no-pdf-header-footer", f"--print-to-pdf={target}",
                                  src.as_uri() + "?print-pdf"], timeout)
        if done.returncode != 0 or not target.exists() or target.stat().st_size == 0:
            msg = (f"Chromium failed to print {src.name} (exit {done.returncode}): "
                   f"{done.stderr.strip()[-800:]}")
            raise SlidesError(msg)
        if pdf_pages(target) >= slides:
            break
    return target


def pdf_pages(pdf: str | os.PathLike[str]) -> int:
    """Number of pages of a PDF file (its ``/Type /Page`` objects)."""
    return len(re.findall(rb"/Type\s*/Page[^s]", Path(pdf).read_bytes()))


def _run_chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        msg = f"Chromium did not finish within {timeout:g} s: {' '.join(args[-2:])}"
        raise SlidesError(msg) from exc


def screenshot(deck: str | os.PathLike[str], png: str | os.PathLike[str], slide: int | str = 0,
               size: tuple[int, int] = (WIDTH, HEIGHT), chromium: str | None = None,
               timeout: float = 120.0, budget_ms: int = 10_000) -> Path:
    """A PNG of one slide of a deck (``slide``: reveal.js index ``h`` or ``"h/v"``),
    rendered by headless Chromium offline (every host name resolves to nothing)."""
    exe = find_chromium(chromium)
    target = Path(png).resolve()
    url = Path(deck).resolve().as_uri() + f"#/{slide}"
    with tempfile.TemporaryDirectory(prefix="adanalytics-chromium-") as profile:
        done = _run_chromium([exe, *chromium_args(profile), "--host-resolver-rules=MAP * ~NOTFOUND",
                              f"--window-size={size[0]},{size[1]}",
                              f"--virtual-time-budget={budget_ms}", f"--screenshot={target}", url],
                             timeout)
    if not target.exists():
        msg = f"Chromium made no screenshot of {url} (exit {done.returncode}): {done.stderr[-800:]}"
        raise SlidesError(msg)
    return target


def rendered_dom(deck: str | os.PathLike[str], slide: int | str = 0, chromium: str | None = None,
                 timeout: float = 120.0, budget_ms: int = 10_000) -> str:
    """The DOM of a deck after its scripts ran (headless Chromium, offline)."""
    exe = find_chromium(chromium)
    url = Path(deck).resolve().as_uri() + f"#/{slide}"
    with tempfile.TemporaryDirectory(prefix="adanalytics-chromium-") as profile:
        done = _run_chromium([exe, *chromium_args(profile), "--host-resolver-rules=MAP * ~NOTFOUND",
                              f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        msg = f"Chromium could not render {url} (exit {done.returncode}): {done.stderr[-800:]}"
        raise SlidesError(msg)
    return done.stdout


def chart_slides(deck_html: str) -> list[str]:
    """reveal.js indices (``"h/v"``) of the slides of a deck that hold a chart."""

    out = []
    for h, outer in enumerate(_SLIDE_START.split(deck_html)[1:]):
        for v, inner in enumerate(re.split(r"</section>\s*<section>", outer.split("</section></section>")[0])):
            if "data:image/png;base64," in inner:
                out.append(f"{h}/{v}")
    return out


# --- the whole job ------------------------------------------------------------------------
def export_decks(notebooks: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 hide_code: bool = False, pdf: bool = False, chromium: str | None = None,
                 node_modules: str | os.PathLike[str] | None = None) -> list[Deck]:
    """Export executed notebooks as decks (and PDFs), plus an ``index.html`` of them."""
    decks = []
    for nb in notebooks:
        deck = export_deck(nb, out_dir, hide_code=hide_code, node_modules=node_modules)
        if pdf:
            deck.pdf = export_pdf(deck.html, chromium=chromium)
        decks.append(deck)
    write_index(out_dir, decks)
    return decks


def build_slides(out_dir: str | os.PathLike[str], *, executed_dir: str | os.PathLike[str] | None = None,
                 parameters: Mapping[str, Any] | None = None, which: Sequence[str | int] | None = None,
                 engine: str | None = None, hide_code: bool = False, pdf: bool = False,
                 chromium: str | None = None, on_start: Any = None, **execute_kwargs: Any) -> list[Deck]:
    """Decks of the notebooks: executed now with papermill into ``OUT/executed/``
    (``parameters`` as the parameters cell takes them; ``engine`` overrides every
    notebook's default), or taken already executed from ``executed_dir``."""
    from adanalytics import notebooks as nbh

    out = Path(out_dir)
    chosen = nbh.select(which)
    if executed_dir is not None:
        src = Path(executed_dir)
        paths = [src / nb.filename for nb in chosen]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            msg = f"executed notebooks not found: {', '.join(missing)}"
            raise SlidesError(msg)
    else:
        paths = nbh.execute_notebooks(out / "executed", parameters, [nb.stem for nb in chosen],
                                      engine=engine, on_start=on_start, **execute_kwargs)
    return export_decks(paths, out, hide_code=hide_code, pdf=pdf, chromium=chromium)


def write_index(out_dir: str | os.PathLike[str], decks: Sequence[Deck]) -> Path:
    """``OUT/index.html``: a page linking every deck (and PDF), for the presenter."""
    from adanalytics.questions import QUESTIONS

    by_stem = {Path(d.html).name.removesuffix(".slides.html"): d for d in decks}
    rows = []
    for stem, d in sorted(by_stem.items()):
        number = int(stem[:2]) if stem[:2].isdigit() else None
        title = QUESTIONS[number - 1].title if number and 1 <= number <= len(QUESTIONS) else stem
        pdf = f" · <a href='{html.escape(d.pdf.name)}'>PDF</a>" if d.pdf else ""
        rows.append(f"<li><a href='{html.escape(d.html.name)}'>{html.escape(stem[:2])} · "
                    f"{html.escape(title)}</a> — {d.slides} slides, {d.charts} charts{pdf}</li>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>adanalytics slides</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:760px;margin:3em auto}"
            "li{margin:.6em 0}</style></head><body><h1>adanalytics — the seven questions</h1>"
            f"<ol style='list-style:none;padding:0'>{''.join(rows)}</ol>"
            "<p>Keys in a deck: arrows to move, <kbd>Esc</kbd> for the overview, <kbd>s</kbd> "
            "for speaker notes; add <code>?print-pdf</code> to the address to print.</p>"
            "</body></html>")
    path = Path(out_dir) / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
