"""One test suite over all engines.

Every test that asks for the ``engine`` fixture runs once per engine chosen with
``--engines`` (default: all of pandas, dask, spark). Engines are created once per test
run (the embedded Dask cluster and the Spark session are process-wide singletons).
"""

from __future__ import annotations

import os

import pytest

ALL_ENGINES = ("pandas", "dask", "spark")

os.environ.setdefault("PYSPARK_PYTHON", __import__("sys").executable)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engines",
        default=os.environ.get("ADANALYTICS_TEST_ENGINES", ",".join(ALL_ENGINES)),
        help="comma-separated engines to run the engine-parametrised tests on "
        "(pandas,dask,spark)",
    )


def selected_engines(config: pytest.Config) -> list[str]:
    names = [e.strip() for e in config.getoption("--engines").split(",") if e.strip()]
    unknown = [e for e in names if e not in ALL_ENGINES]
    if unknown:
        raise pytest.UsageError(f"unknown engine(s) {unknown}; choose from {ALL_ENGINES}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", selected_engines(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    """The engine name this test runs on."""
    return request.param
