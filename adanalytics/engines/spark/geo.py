"""Haversine distance and grid cell keys as Spark Column expressions.

Both mirror :mod:`adanalytics.geo` operation by operation: the cell key of a record is
built from the same IEEE double operations (+, -, *, /, floor) and the same integer
thresholds as :meth:`adanalytics.geo.GridSpec.cell_keys`, with the grid's constants as
literals, so Spark's keys equal numpy's bit for bit and the establishments' replicated
cells (:func:`adanalytics.geo.replicate_points`, computed on the driver) join with the
records' keys exactly. The haversine keeps numpy's operation order; the JVM's
``sin``/``cos``/``asin`` may differ from the C library's in the last bit (about 1e-13 m),
which only matters for a point whose distance equals the radius to 14 digits.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from adanalytics.geo import GridSpec, replicate_points
from adanalytics.semantics import EARTH_RADIUS_M

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

#: numpy's ``radians`` multiplies by this constant (pi / 180).
_DEG = math.pi / 180.0


def haversine(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    """Great-circle distance in metres, the formula of :func:`adanalytics.geo.haversine_m`."""
    from pyspark.sql import functions as F

    deg = F.lit(_DEG)
    p1 = lat1 * deg
    p2 = lat2 * deg
    dphi = p2 - p1
    dlmb = lon2 * deg - lon1 * deg
    s_phi = F.sin(dphi / 2.0)
    s_lmb = F.sin(dlmb / 2.0)
    # numpy: sin(.)**2 + cos(p1) * cos(p2) * sin(.)**2, i.e. (c1 * c2) * (s * s)
    a = s_phi * s_phi + (F.cos(p1) * F.cos(p2)) * (s_lmb * s_lmb)
    return F.lit(2.0 * EARTH_RADIUS_M) * F.asin(F.sqrt(F.least(a, F.lit(1.0))))


def lon_cells(spec: GridSpec, band: Column) -> Column:
    """Number of longitude cells of each band (long), as :meth:`GridSpec.lon_cells`."""
    from pyspark.sql import functions as F

    q = F.least(band, F.lit(spec.n_bands - 1) - band)
    zq = list(spec.zone_q)  # ascending; shift = number of thresholds > q
    n0 = spec.n_lon0
    if not zq:
        return F.lit(n0).cast("long")
    expr = None
    for shift in range(len(zq)):
        threshold = zq[len(zq) - 1 - shift]
        value = F.lit(max(n0 >> shift, 1)).cast("long")
        expr = F.when(q >= threshold, value) if expr is None else expr.when(q >= threshold, value)
    return expr.otherwise(F.lit(max(n0 >> len(zq), 1)).cast("long"))  # type: ignore[union-attr]


def cell_band(spec: GridSpec, lat: Column) -> Column:
    """Latitude band of each point (long), as :meth:`GridSpec.band`."""
    from pyspark.sql import functions as F

    raw_band = F.floor((lat + F.lit(90.0)) / F.lit(spec.height_deg))
    return F.greatest(F.lit(0), F.least(F.lit(spec.n_bands - 1), raw_band)).cast("long")


def cell_key_of_band(spec: GridSpec, band: Column, lon: Column) -> Column:
    """The cell key (``band << 32 | lon_index``) of a point in ``band`` at ``lon``."""
    from pyspark.sql import functions as F

    n = lon_cells(spec, band)
    idx = F.floor((lon + F.lit(180.0)) * n.cast("double") / F.lit(360.0))
    return F.shiftleft(band, 32).bitwiseOR(F.pmod(idx, n))


def cell_key(spec: GridSpec, lat: Column, lon: Column) -> Column:
    """The cell key (``band << 32 | lon_index``) of each point, equal to numpy's.

    One expression (the band inlined where it is used); over many records prefer
    :func:`with_cell_key`, which computes the band once per record.
    """
    return cell_key_of_band(spec, cell_band(spec, lat), lon)


def with_cell_key(df: DataFrame, spec: GridSpec, name: str = "_cell", *, lat: str = "lat",
                  lon: str = "lon") -> DataFrame:
    """``df`` plus the cell key column ``name``, the band computed once per record (a
    separate projection Spark does not inline: it is used a dozen times by the key)."""
    tmp = f"{name}_band"
    band, key = _cell_key_exprs(spec, lat, lon, tmp, _jvm_id())
    return df.withColumn(tmp, band).withColumn(name, key).drop(tmp)


def _jvm_id() -> int:
    from pyspark import SparkContext

    return id(SparkContext._jvm)


@functools.lru_cache(maxsize=64)
def _cell_key_exprs(spec: GridSpec, lat: str, lon: str, tmp: str,
                    jvm: int) -> tuple[Column, Column]:
    """The band and key expressions of :func:`with_cell_key`, built once per grid (each
    takes a few hundred py4j calls: about 0.2 s of driver time per query otherwise).
    Unresolved column expressions, reusable by any frame of the JVM ``jvm``."""
    from pyspark.sql import functions as F

    band = cell_band(spec, F.col(lat))
    # non-nullable (-1 for a null position, a key no cell has): otherwise the optimizer
    # infers an `isnotnull(key)` filter from the join and computes the whole key twice
    key = F.coalesce(cell_key_of_band(spec, F.col(tmp), F.col(lon)), F.lit(-1).cast("long"))
    return band, key


def place_cells(spark: SparkSession, establishments: pd.DataFrame, spec: GridSpec,
                columns: tuple[str, ...] = ("establishment_id", "category")) -> DataFrame:
    """Every (cell key, establishment) pair whose disc may reach the cell (small; broadcast).

    Columns: ``_cell`` (long), the requested establishment columns, ``_elat``, ``_elon``.
    """
    import pyarrow as pa

    from adanalytics.engines.spark.collect import arrow_column

    lat = establishments["lat"].to_numpy(np.float64)
    lon = establishments["lon"].to_numpy(np.float64)
    keys, idx = replicate_points(spec, lat, lon)
    arrays = {"_cell": pa.array(keys, pa.int64())}
    for c in columns:
        arrays[c] = arrow_column(establishments[c].iloc[idx].reset_index(drop=True))
    arrays["_elat"] = pa.array(lat[idx], pa.float64())
    arrays["_elon"] = pa.array(lon[idx], pa.float64())
    return spark.createDataFrame(pa.table(arrays))
