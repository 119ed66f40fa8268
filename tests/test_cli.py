"""The command line, as a user runs it (a real subprocess of the console script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adanalytics.dataset import ANALYSES
from tests.helpers import offset

EXE = [sys.executable, "-m", "adanalytics.cli"]
E = (-8.05, -34.9)


def _write_dataset(root: Path) -> Path:
    near = offset(*E, north_m=30)
    root.mkdir(parents=True, exist_ok=True)
    tables = {
        "campaigns": {"campaign_id": ["c1"], "name": ["A"], "start_date": ["2024-01-01"],
                      "end_date": ["2024-01-31"]},
        "ads": {"ad_id": ["a1"], "campaign_id": ["c1"], "establishment_id": ["e1"], "category": ["food"]},
        "establishments": {"establishment_id": ["e1"], "name": ["x"], "category": ["restaurant"],
                           "lat": [E[0]], "lon": [E[1]]},
        "interactions": {"user_id": ["u1", "u1"], "ad_id": ["a1", "a1"], "action": ["view", "click"],
                         "ts": ["2024-01-10T10:00:00Z", "2024-01-10T10:01:00Z"]},
        "locations": {"user_id": ["u1", "u1"], "lat": [offset(*E, north_m=300)[0], near[0]],
                      "lon": [E[1], near[1]], "ts": ["2024-01-10T11:00:00Z", "2024-01-10T11:05:00Z"]},
    }
    for name, cols in tables.items():
        pd.DataFrame(cols).to_csv(root / f"{name}.csv", index=False)
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_help_explains_every_command() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("generate", "validate", "run", "demo"):
        assert cmd in res.stdout
        sub = run_cli(cmd, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: adanalytics " + cmd in sub.stdout


def test_validate_clean_dataset_exits_zero(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    res = run_cli("validate", "--data", str(data))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all rules hold" in res.stdout


def test_validate_reports_every_broken_rule_without_traceback(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    inter = pd.read_csv(data / "interactions.csv")
    inter.loc[0, "action"] = "tap"
    inter.to_csv(data / "interactions.csv", index=False)
    loc = pd.read_csv(data / "locations.csv")
    loc.loc[0, "lat"] = 123.0
    loc.to_csv(data / "locations.csv", index=False)
    res = run_cli("validate", "--data", str(data))
    assert res.returncode == 1
    out = res.stdout + res.stderr
    assert "Traceback" not in out
    assert "'interactions', rule 'action_valid'" in out and "tap" in out
    assert "'locations', rule 'lat_range'" in out and "123" in out


def test_run_all_writes_parquet_and_csv(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    res = run_cli("run", "all", "--data", str(data), "--engine", "pandas", "--by", "month",
                  "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ANALYSES:
        stem = f"{name}_by_month" if name in ("ctr", "visits", "attribution", "category_hourly") else name
        assert (out / f"{stem}.parquet").exists(), stem
        assert (out / f"{stem}.csv").exists(), stem
    ctr = pd.read_parquet(out / "ctr_by_month.parquet")
    assert ctr.to_dict("list") == {
        "campaign_id": ["c1"], "month": ["2024-01"], "views": [1], "clicks": [1], "ctr": [1.0],
        "ctr_low": [pytest.approx(0.206549, abs=1e-6)], "ctr_high": [1.0],
    }
    visits = pd.read_csv(out / "visits_by_month.csv")
    assert visits.to_dict("list") == {"establishment_id": ["e1"], "month": ["2024-01"],
                                      "visits": [1], "visitors": [1]}


def test_run_quarantine_writes_rejected_rows(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    inter = pd.read_csv(data / "interactions.csv")
    inter.loc[1, "ad_id"] = "nope"
    inter.to_csv(data / "interactions.csv", index=False)
    out = tmp_path / "out"
    strict = run_cli("run", "ctr", "--data", str(data), "--out", str(out))
    assert strict.returncode == 1
    assert "ad_id_exists" in strict.stderr and "Traceback" not in strict.stderr
    res = run_cli("run", "ctr", "--data", str(data), "--out", str(out), "--on-invalid", "quarantine")
    assert res.returncode == 0, res.stderr
    rejected = pd.read_parquet(out / "rejected" / "interactions.parquet")
    assert rejected["_rule"].tolist() == ["ad_id_exists"]
    assert rejected["ad_id"].tolist() == ["nope"]
    ctr = pd.read_parquet(out / "ctr_by_total.parquet")
    assert ctr[["views", "clicks"]].to_dict("list") == {"views": [1], "clicks": [0]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "ctr", "--data", "/nonexistent/ds", "--out", "x"], "does not exist"),
        (["run", "ctr", "--data", "{data}", "--out", "x", "--tz", "Mars/Olympus"], "IANA"),
        (["generate", "--scale", "huge", "--out", "x"], "--scale must be one of"),
    ],
)
def test_bad_arguments_name_the_problem(tmp_path: Path, args: list[str], message: str) -> None:
    data = _write_dataset(tmp_path / "ds")
    res = run_cli(*[a.replace("{data}", str(data)) for a in args])
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_table_is_named(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    (data / "ads.csv").unlink()
    res = run_cli("validate", "--data", str(data))
    assert res.returncode == 1
    assert "missing table(s): ads" in res.stderr
