"""environment.yml (conda) and pyproject.toml (pip) list the same dependencies."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
#: pip name -> conda-forge name, where they differ
CONDA_NAME = {"redis": "redis-py"}
#: conda packages with no pip counterpart in pyproject (the interpreter and the JVM)
CONDA_ONLY = {"python", "openjdk", "pip"}
#: extras whose packages conda installs separately (the others come with the conda package)
EXTRAS_LISTED = {"pyspark": {"connect"}, "dask": {"distributed"}}


def _spec(text: str) -> str:
    return ",".join(sorted(p.strip() for p in text.split(",") if p.strip()))


def conda_dependencies() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps: dict[str, str] = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):  # the pip: section
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", item.strip())
        assert match, item
        name, spec = match[1].lower(), match[2]
        if spec.startswith("=") and not spec.startswith("=="):  # conda's fuzzy "=3.11"
            spec = ""
        deps[name] = _spec(spec)
    return deps


def pip_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"].get("cluster", [])]


def _extra_requirements(req: Requirement) -> set[str]:
    """Names required by the extras of ``req`` that conda lists on their own."""
    names: set[str] = set()
    for extra in req.extras & EXTRAS_LISTED.get(req.name, set()):
        for text in importlib.metadata.requires(req.name) or []:
            sub = Requirement(text)
            if sub.marker and "extra" in str(sub.marker) and sub.marker.evaluate({"extra": extra}):
                names.add(CONDA_NAME.get(sub.name.lower(), sub.name.lower()))
    return names


def test_every_pip_dependency_is_in_environment_yml_with_the_same_version() -> None:
    conda = conda_dependencies()
    problems = []
    for req in pip_requirements():
        name = CONDA_NAME.get(req.name.lower(), req.name.lower())
        if name not in conda:
            problems.append(f"add '- {name}{req.specifier}' to environment.yml")
        elif conda[name] != _spec(str(req.specifier)):
            problems.append(f"environment.yml has {name} '{conda[name]}', pyproject '{req.specifier}'")
        problems += [f"add '- {n}' to environment.yml (needed by {req})"
                     for n in sorted(_extra_requirements(req) - set(conda))]
    assert not problems, "\n".join(problems)


def test_environment_yml_has_nothing_pyproject_does_not_ask_for() -> None:
    wanted = set(CONDA_ONLY)
    for req in pip_requirements():
        wanted.add(CONDA_NAME.get(req.name.lower(), req.name.lower()))
        wanted |= _extra_requirements(req)
    extra = sorted(set(conda_dependencies()) - wanted)
    assert not extra, f"environment.yml lists {extra}, which pyproject.toml does not require"


def test_environment_yml_installs_the_package_itself() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = [i for i in env["dependencies"] if isinstance(i, dict)]
    assert pip_section and any(line.startswith("-e .") for line in pip_section[0]["pip"])
