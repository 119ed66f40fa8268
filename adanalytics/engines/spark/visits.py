"""Question 2: visits to establishments (SPEC §3.2) - and the visit pairs questions 3 and
6 build on - as a broadcast equi-join on grid cell keys.

Each establishment is replicated (on the driver, :func:`adanalytics.geo.replicate_points`)
into every cell its disc can reach; that small table is broadcast, each location record
computes its own cell key in the JVM (:func:`adanalytics.engines.spark.geo.cell_key`),
and the hash join yields the few candidates on which the exact haversine rule
(``distance < radius``) decides. No record is compared with every establishment.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from adanalytics.engines.spark import timebuckets as tb
from adanalytics.engines.spark.geo import _jvm_id, haversine, place_cells, with_cell_key
from adanalytics.engines.spark.joins import sort_output
from adanalytics.geo import GridSpec, grid_spec
from adanalytics.semantics import VISIT_RADIUS_M, output_columns, output_keys

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


#: Integer position of an establishment in :func:`establishments_pandas` (a cheaper
#: grouping key than the id text; the ids are joined back on the few result rows).
POSITION = "_eidx"


def establishments_pandas(establishments: DataFrame):  # type: ignore[no-untyped-def]
    """The (small) establishments table on the driver, for the grid replication, with
    each row's position (``_eidx``)."""
    from adanalytics.engines.spark.collect import small_to_pandas

    est = small_to_pandas(establishments, ["establishment_id", "category", "lat", "lon"])
    return est.assign(**{POSITION: np.arange(len(est), dtype=np.int64)})


#: Position -> establishment id frames (broadcast), per establishments frame.
_IDS: weakref.WeakKeyDictionary[Any, DataFrame] = weakref.WeakKeyDictionary()


def establishment_ids(establishments: DataFrame) -> DataFrame:
    """``_eidx`` -> ``establishment_id`` (small; memoised per frame)."""
    if establishments not in _IDS:
        from adanalytics.engines.spark.collect import to_spark_frame

        est = establishments_pandas(establishments)
        _IDS[establishments] = to_spark_frame(establishments.sparkSession,
                                              est[[POSITION, "establishment_id"]])
    return _IDS[establishments]


#: Replicated cells per establishments frame and (radius, columns): built once per dataset.
_CELLS: weakref.WeakKeyDictionary[Any, dict[tuple[float, tuple[str, ...]], DataFrame]] = (
    weakref.WeakKeyDictionary())


def _place_cells(establishments: DataFrame, spec: GridSpec,
                 columns: tuple[str, ...]) -> DataFrame:
    """The establishments replicated into their grid cells (memoised per frame)."""
    per_frame = _CELLS.setdefault(establishments, {})
    key = (spec.radius_m, columns)
    if key not in per_frame:
        per_frame[key] = place_cells(establishments.sparkSession,
                                     establishments_pandas(establishments), spec, columns)
    return per_frame[key]


#: Cached locations frames -> whether ``xxhash64(user_id)`` takes a distinct value for
#: every distinct user id of the frame (checked once, by :func:`check_user_hash`).
_USER_HASH: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def check_user_hash(locations: DataFrame) -> bool:
    """Check (one pass over the distinct users) and remember whether the 64-bit hash of
    ``user_id`` tells every user of ``locations`` apart.

    Run on the persisted locations by ``persist()``: from then on, :func:`visits` counts
    distinct visitors on that long instead of the id text (exact, since no two users share
    a hash; a frame where two do keeps the text).
    """
    from pyspark.sql import functions as F

    sc = locations.sparkSession.sparkContext
    sc.setJobDescription("adanalytics: persist locations (user id hashes)")
    try:
        users = locations.select("user_id").distinct().select(F.xxhash64("user_id").alias("h"))
        row = users.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("h").alias("h")).first()
    finally:
        sc.setJobDescription(None)  # type: ignore[arg-type]
    ok = row is not None and int(row["n"]) == int(row["h"])
    _USER_HASH[locations] = ok
    return ok


def user_key(locations: DataFrame) -> Column:
    """A grouping key equivalent to ``user_id`` on ``locations``: its 64-bit hash where
    :func:`check_user_hash` found it injective, else the id itself."""
    from pyspark.sql import functions as F

    return F.xxhash64("user_id") if _USER_HASH.get(locations) else F.col("user_id")


#: The user's grouping key in :func:`near_pairs` (``with_user=True``) and :func:`visits`.
USER = "_user"


@dataclass(frozen=True)
class KeyedLocations:
    """Persisted locations that carry each record's grid cell and user hash.

    ``frame`` is the cached frame: the locations' columns plus ``_cell`` (the record's key
    on the grid ``spec``, that of the visit radius) and ``_user`` (``xxhash64(user_id)``).
    The dataset's ``locations`` table is its projection on the original columns, so
    users see the table they loaded, while the pairs of that radius read the keys
    instead of computing them again for every record at every query.
    """

    frame: DataFrame
    spec: GridSpec
    #: ``frame`` is hash-partitioned by ``user_id`` (``persist()`` spread it by user):
    #: counts per user need no shuffle when they group on the id itself
    by_user: bool = False


#: Public (projected) locations frames -> their keyed cached frame (see ``persist()``).
_KEYED: weakref.WeakKeyDictionary[Any, KeyedLocations] = weakref.WeakKeyDictionary()


def with_keys(locations: DataFrame, radius_m: float = VISIT_RADIUS_M) -> DataFrame:
    """``locations`` plus ``_cell`` (the grid of ``radius_m``) and ``_user`` columns."""
    from pyspark.sql import functions as F

    spec = grid_spec(float(radius_m))
    return with_cell_key(locations, spec).withColumn(USER, F.xxhash64("user_id"))


def register_keyed(keyed: DataFrame, columns: list[str], radius_m: float = VISIT_RADIUS_M,
                   *, by_user: bool = False) -> DataFrame:
    """The projection of the cached ``keyed`` frame (of :func:`with_keys`) on ``columns``,
    remembered so that :func:`near_pairs` finds the keys behind it."""
    public = keyed.select(*columns)
    _KEYED[public] = KeyedLocations(keyed, grid_spec(float(radius_m)), by_user)
    return public


def keyed_frame(locations: DataFrame) -> DataFrame | None:
    """The cached keyed frame behind persisted ``locations``, if any."""
    k = _KEYED.get(locations)
    return None if k is None else k.frame


@functools.lru_cache(maxsize=64)
def _distance_exprs(radius_m: float, jvm: int) -> tuple[Column, Column]:
    """The haversine distance to the establishment and the ``distance < radius`` rule,
    built once per radius (unresolved expressions: each takes a few dozen py4j calls)."""
    from pyspark.sql import functions as F

    dist = haversine(F.col("lat"), F.col("lon"), F.col("_elat"), F.col("_elon"))
    return dist, dist < F.lit(float(radius_m))


def near_pairs(records: DataFrame, establishments: DataFrame, radius_m: float,
               *, keep: tuple[str, ...] = ("user_id", "ts"),
               place_columns: tuple[str, ...] = ("establishment_id", "category"),
               with_user: bool = False) -> DataFrame:
    """Every (record, establishment) pair closer than ``radius_m`` (strictly).

    Columns: ``keep`` columns of the records, ``_user`` (``with_user``: a grouping key
    equivalent to ``user_id``, see :func:`user_key`), ``lat``/``lon``, ``place_columns``
    of the establishment, ``_elat``/``_elon`` (its position) and ``distance_m``.
    Persisted locations (:class:`KeyedLocations`) bring their own cell keys and user
    hashes.
    """
    from pyspark.sql import functions as F

    radius_m = float(radius_m)
    spec = grid_spec(radius_m)
    cells = _place_cells(establishments, spec, place_columns)
    keyed = _KEYED.get(records)
    hashed = bool(_USER_HASH.get(records))
    if with_user:  # the user's key: the id where the records are partitioned by it (no
        # shuffle to count per user), else the stored hash, the hash of the pairs, the id
        by_id = keyed is not None and keyed.by_user
        source = USER if keyed is not None and hashed and not by_id else "user_id"
        user = (F.col(USER) if source == USER
                else F.col("user_id") if by_id else user_key(records)).alias(USER)
    columns = list(dict.fromkeys([*keep, *([source] if with_user else []), "lat", "lon"]))
    if keyed is not None and keyed.spec == spec:
        rec = keyed.frame.select(*columns, "_cell")
    else:
        rec = with_cell_key((records if keyed is None else keyed.frame).select(*columns), spec)
    dist, within = _distance_exprs(radius_m, _jvm_id())
    joined = rec.join(F.broadcast(cells), on="_cell", how="inner").where(within)
    return joined.select(*keep, *([user] if with_user else []), "lat", "lon", *place_columns,
                         "_elat", "_elon", dist.alias("distance_m"))


def visit_pairs(locations: DataFrame, establishments: DataFrame, radius_m: float) -> DataFrame:
    """Every (location record, establishment) pair closer than the radius.

    Columns: user_id, ts, establishment_id, category (the establishment's), distance_m.
    """
    return near_pairs(locations, establishments, radius_m).select(
        "user_id", "ts", "establishment_id", "category", "distance_m")


def visits(locations: DataFrame, establishments: DataFrame, *, by: str, tz: str,
           radius_m: float) -> DataFrame:
    """Visits and distinct visitors of every establishment with at least one visit."""
    from pyspark.sql import functions as F

    keys = output_keys("visits", by)
    # grouped by the establishment's position (int), not its id text, and by the user's
    # key of near_pairs (the id where the records are spread by it, else its hash where
    # known injective): the establishments' ids are joined back on the result rows
    pairs = near_pairs(locations, establishments, radius_m, keep=("ts",),
                       place_columns=(POSITION,), with_user=True)
    group = [POSITION] + (["_month"] if by == "month" else [])
    if by == "month":  # an int key per pair, the text label per result row
        pairs = pairs.withColumn("_month", tb.month_key(tb.local_us(F.col("ts"), tz)))
    per_user = pairs.groupBy(*group, USER).agg(F.count(F.lit(1)).alias("n"))
    out = per_user.groupBy(*group).agg(
        F.sum("n").cast("long").alias("visits"), F.count(F.lit(1)).cast("long").alias("visitors"))
    out = out.join(F.broadcast(establishment_ids(establishments)), on=POSITION, how="inner")
    if by == "month":
        out = out.withColumn("month", tb.month_label(F.col("_month")))
    return sort_output(out, keys, output_columns("visits", by))
