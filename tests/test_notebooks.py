"""The seven notebooks: committed clean, parameterised, and runnable headless end to end.

Each notebook runs with papermill (explicit kernel start and cell timeouts) on one tiny
generated dataset, with its default engine (Dask for 1/3/5, Spark for 2/4/6/7; 7 also
starts a private redis-server and the streaming job), and must finish without error and
show its charts. The executed notebooks are then exported as offline reveal.js decks and
one is opened in headless Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from papermill.translators import PythonTranslator

from adanalytics import notebooks as nbh
from adanalytics import slides

NOTEBOOK_DIR = nbh.notebooks_dir()
#: Charts (PNG outputs) each notebook shows at least.
CHARTS = {1: 2, 2: 3, 3: 2, 4: 4, 5: 2, 6: 2, 7: 2}
START_TIMEOUT_S = 240
CELL_TIMEOUT_S = 900


def load(info: nbh.NotebookInfo) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / info.filename, as_version=4)


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


# --- the committed notebooks ----------------------------------------------------------------
def test_all_seven_notebooks_exist() -> None:
    found = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == sorted(info.filename for info in nbh.NOTEBOOKS)


@pytest.mark.parametrize("info", nbh.NOTEBOOKS, ids=lambda i: i.stem)
def test_committed_without_outputs(info: nbh.NotebookInfo) -> None:
    assert nbh.has_outputs(NOTEBOOK_DIR / info.filename) == []
    raw = json.loads((NOTEBOOK_DIR / info.filename).read_text())
    assert "papermill" not in raw["metadata"]
    assert all("papermill" not in c["metadata"] and "execution" not in c["metadata"]
               for c in raw["cells"])


@pytest.mark.parametrize("info", nbh.NOTEBOOKS, ids=lambda i: i.stem)
def test_notebook_structure(info: nbh.NotebookInfo) -> None:
    nb = load(info)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {info.number} ·")
    assert "**Question.**" in first.source
    assert any(c.cell_type == "markdown" and "Definition" in c.source for c in nb.cells)
    params = {p.name: p.default for p in PythonTranslator.inspect(parameters_cell(nb))}
    assert set(nbh.PARAMETERS) <= set(params), params
    assert params["data_path"] == '""' and params["address"] == '""'
    assert params["engine"] == f'"{info.engine}"'
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("nbh.connect(data_path, engine, address, tz)" in c for c in code)
    # front ends are thin: no analysis logic in a notebook cell
    for src in code:
        for banned in ("groupby", ".merge(", "def ", "lambda", ".apply(", "haversine"):
            assert banned not in src, (banned, src)
    # each chart starts a slide
    for cell in nb.cells:
        if cell.cell_type == "code" and "nbh.show(" in cell.source:
            assert cell.metadata["slideshow"]["slide_type"] == "slide", cell.source


def test_select_and_connection_options() -> None:
    assert [n.number for n in nbh.select(["2", "07", "01_campaign_ctr"])] == [2, 7, 1]
    with pytest.raises(ValueError, match="no notebook"):
        nbh.select(["8"])
    assert nbh.connection_kwargs("dask", "tls://m:8786") == {"address": "tls://m:8786"}
    assert nbh.connection_kwargs("spark", "spark://m:7077") == {"master": "spark://m:7077"}
    assert nbh.connection_kwargs("spark", "") == {}


def test_empty_data_path_generates_one_shared_sample(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = nbh.resolve_data_path("", scale=500, seed=4)
    assert Path(first, "truth.json").exists() and Path(first).parent == tmp_path
    assert nbh.resolve_data_path("", scale=500, seed=4) == first
    assert nbh.resolve_data_path("/some/where") == "/some/where"
    assert [p.name for p in tmp_path.iterdir()] == [Path(first).name]  # no leftovers


# --- running them ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adanalytics.synth import generate

    path = tmp_path_factory.mktemp("notebook-data") / "tiny"
    generate(path, scale="tiny", seed=7)
    return path


@pytest.fixture(scope="session")
def executed(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run a notebook once per test session (papermill, default engine); returns the path
    of the executed copy, or raises what the run raised."""
    out = tmp_path_factory.mktemp("executed")
    done: dict[str, Path | BaseException] = {}

    def run(info: nbh.NotebookInfo) -> Path:
        if info.stem not in done:
            try:
                done[info.stem] = nbh.execute_notebook(
                    NOTEBOOK_DIR / info.filename, out / info.filename,
                    {"data_path": str(tiny_data)}, start_timeout=START_TIMEOUT_S,
                    execution_timeout=CELL_TIMEOUT_S, cwd=NOTEBOOK_DIR)
            except nbh.NotebookError as exc:
                done[info.stem] = exc
        result = done[info.stem]
        if isinstance(result, BaseException):
            raise result
        return result

    return run


def outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT_S + 3 * CELL_TIMEOUT_S)
@pytest.mark.parametrize("info", nbh.NOTEBOOKS, ids=lambda i: i.stem)
def test_notebook_runs_headless(info: nbh.NotebookInfo, executed) -> None:  # type: ignore[no-untyped-def]
    path = executed(info)
    outs = outputs(path)
    assert not [o for o in outs if o.get("output_type") == "error"]
    charts = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(charts) >= CHARTS[info.number], f"{len(charts)} charts"
    text = json.dumps([o.get("data", {}).get("text/html", "") for o in outs])
    assert f"<b>Engine</b>: {info.engine} on" in text  # ran on its default engine
    assert "<b>Dashboard</b>: <a href=" in text  # the Dask / Spark UI link
    if info.number == 7:
        assert "real-time job finished" in text and "identical" in text, text[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT_S + 3 * CELL_TIMEOUT_S)
def test_executed_notebook_makes_an_offline_deck_with_a_visible_chart(executed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.image import imread

    info = nbh.NOTEBOOKS[0]
    deck = slides.export_decks([executed(info)], tmp_path, hide_code=True)[0]
    page = deck.html.read_text()
    assert slides.external_urls(page) == []
    assert deck.charts >= CHARTS[1]
    where = slides.chart_slides(page)
    assert len(where) >= CHARTS[1]
    dom = slides.rendered_dom(deck.html, where[0])
    assert re.search(r'<div class="reveal[^"]*\bready\b', dom)
    img = (imread(slides.screenshot(deck.html, tmp_path / "slide.png", where[0]))[..., :3] * 255
           ).astype(np.int16)
    coloured = (img.max(axis=2) - img.min(axis=2)) > 50
    assert coloured.mean() > 0.02, "the chart slide looks blank"
    assert (tmp_path / "index.html").read_text().count(".slides.html") == 1


def test_strip_outputs(tmp_path: Path) -> None:
    src = NOTEBOOK_DIR / nbh.NOTEBOOKS[0].filename
    nb = nbformat.read(src, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.execution_count = 3
    code.metadata["papermill"] = {"duration": 1.0}
    nb.metadata["papermill"] = {"parameters": {}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert nbh.has_outputs(path)
    assert nbh.strip_outputs(path) is True
    stripped = json.loads(path.read_text())
    assert nbh.has_outputs(path) == [] and "papermill" not in stripped["metadata"]
    assert all("papermill" not in c["metadata"] for c in stripped["cells"])
    assert nbh.strip_outputs(path) is False
