"""The self-contained HTML report: from a dataset, from results, and from the command line."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import adanalytics as aa
from adanalytics import report
from adanalytics.output import write_frame
from adanalytics.questions import QUESTIONS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adanalytics.synth import generate

    path = tmp_path_factory.mktemp("report") / "data"
    generate(path, scale="tiny", seed=5)
    return path


def loaded_urls(page: str) -> list[str]:
    """What a page would fetch: src/href of scripts, stylesheets, images, frames, @import."""
    urls = re.findall(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)""", page)
    urls += re.findall(r"@import\s+url\(\s*['\"]?([^'\")]+)", page)
    return urls


def test_report_from_a_dataset_is_self_contained(data: Path, tmp_path: Path) -> None:
    out = report.build_report(tmp_path / "r.html", data=str(data), engine="pandas", top_n=5)
    page = out.read_text()
    for q in QUESTIONS:
        assert html.escape(f"{q.number}. {q.title}") in page
    images = re.findall(r"<img alt='[^']*' src='data:image/png;base64,", page)
    # 2 (Q1) + 3 with the map (Q2) + 2 (Q3) + 4 (Q4) + 2 (Q5) + 2 (Q6) + 1 map (Q7)
    assert len(images) == 16
    assert all(u.startswith("data:") for u in loaded_urls(page)), loaded_urls(page)
    assert "not drawn" not in page
    assert "America/Recife" in page


def test_report_from_results_with_maps_from_the_dataset(data: Path, tmp_path: Path) -> None:
    ds = aa.open_dataset(str(data), engine="pandas")
    frames = report.compute_results(ds)
    results = tmp_path / "results"
    for name, df in frames.items():
        if name != "visits_by_month":  # one result missing: its chart is left out, said so
            write_frame(df, results, name)
    out = report.build_report(tmp_path / "r.html", results=results, data=str(data))
    page = out.read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 15
    assert f"results in {results}" in page

    only = report.build_report(tmp_path / "r2.html", results=results)  # no dataset: no maps
    assert len(re.findall(r"src='data:image/png;base64,", only.read_text())) == 13


def test_results_read_back_from_csv(data: Path, tmp_path: Path) -> None:
    ds = aa.open_dataset(str(data), engine="pandas")
    recs = aa.to_pandas(ds.recommendations())
    write_frame(recs, tmp_path, "recommendations")
    (tmp_path / "recommendations.parquet").unlink()
    back = report.load_results(tmp_path)["recommendations"]
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    assert back["ts"].tolist() == recs["ts"].tolist()


def test_missing_results_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results directory not found"):
        report.load_results(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no result files"):
        report.load_results(tmp_path)
    with pytest.raises(ValueError, match=r"a dataset \(data=\) or a results directory"):
        report.build_report(tmp_path / "x.html")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "adanalytics.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=REPO, check=False)


def test_cli_report(data: Path, tmp_path: Path) -> None:
    # the command is thin: results of one analysis are enough to see it work end to end
    run = _cli("run", "ctr", "--data", str(data), "--engine", "pandas", "--out", str(tmp_path / "res"))
    assert run.returncode == 0, run.stderr
    res = _cli("report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "report.html"),
               "--top-n", "5", "--title", "CTR only")
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    page = (tmp_path / "report.html").read_text()
    assert "<h1>CTR only</h1>" in page and "(not drawn: no visits_by_total result)" in page
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 1

    res = _cli("report", "--out", str(tmp_path / "x.html"))
    assert res.returncode == 2 and "--data DIR or --results DIR" in res.stderr

    res = _cli("report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "x.html"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "results directory not found" in res.stderr
