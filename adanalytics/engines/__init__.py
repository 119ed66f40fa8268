"""Engines: the same analyses on pandas (reference), Dask and Spark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adanalytics.engines.base import Engine

ENGINES: tuple[str, ...] = ("pandas", "dask", "spark")


def get_engine(name: str, **connection: Any) -> Engine:
    """Create the engine called ``name`` (imports Dask/Spark only when asked for)."""
    if name == "pandas":
        from adanalytics.engines.pandas.engine import PandasEngine

        if connection:
            msg = f"the pandas engine takes no connection options, got {sorted(connection)}"
            raise TypeError(msg)
        return PandasEngine()
    if name == "dask":
        from adanalytics.engines.dask.engine import DaskEngine

        return DaskEngine(**connection)
    if name == "spark":
        from adanalytics.engines.spark.engine import SparkEngine

        return SparkEngine(**connection)
    msg = f"engine must be one of {', '.join(ENGINES)}, got {name!r}"
    raise ValueError(msg)
