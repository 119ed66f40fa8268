"""Turning pandas kernels into Dask graphs: broadcast, map per partition, tree-reduce.

Three building blocks carry every analysis of the Dask engine:

- :func:`share` broadcasts a small object (a dimension table, the establishments' grid
  index) to every partition task: no big table is shuffled to meet it. Small objects
  are one graph task (a lost copy is recomputed from the graph); the grid index, of
  megabytes, is scattered once to every worker instead.
- :func:`map_kernel` runs a pandas kernel on every partition; its output schema
  (``meta``) comes from running the same kernel on the empty input schema.
- :func:`map_aligned` does the same over partition ``i`` of several frames laid out
  alike by user (after ``persist()``), so that per-user work needs no shuffle.
- :func:`tree_reduce` combines the summable partial results in a tree and finishes with
  the pandas *finalize* function, giving a single, sorted partition (results are small).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from adanalytics.engines.base import Tables
from adanalytics.engines.pandas.visits import USER_CODE

if TYPE_CHECKING:
    import dask.dataframe as dd
    from dask.delayed import Delayed
    from distributed import Future

#: Partial results are combined this many at a time (tree reduction fan-in). Partial
#: counts of different partitions overlap little (the inputs are not grouped by key), so
#: intermediate combine steps would mostly re-group the same rows: a wide fan-in keeps
#: the tree shallow (one level up to 32 partitions).
SPLIT_EVERY = 32
#: Rows per partition of the tables ``persist()`` lays out by user (locations; the
#: interactions get as many partitions). Each task on this VM costs the scheduler and
#: worker ~5 ms however small its partition, and each kernel call has fixed pandas
#: costs: at 1e7 locations, 27 partitions of ~370k rows took visits 0.60 s, 4 of 2.5M
#: rows 0.35 s. A partition of 2.5M records is ~250 MB in memory.
PERSIST_PARTITION_ROWS = 2_500_000
#: Shuffles of fewer rows than this use Dask's task-based shuffle (lowest latency on
#: small data); larger ones the peer-to-peer shuffle (bounded memory, spills to disk).
TASK_SHUFFLE_MAX_ROWS = 5_000_000


@dataclass
class DaskTables(Tables):
    """The five validated tables as Dask DataFrames, plus pandas copies of the small ones.

    The dimension tables (campaigns, ads, establishments) are small: analyses read them
    from ``small`` on the client to build broadcasts (and the grid index, cached per
    radius in ``cache``) rather than computing them again.
    """

    small: dict[str, pd.DataFrame] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    #: the client whose cluster holds the tables (broadcasts are scattered through it)
    client: Any = field(default=None, repr=False)
    #: valid rows per table (None when unknown)
    rows: dict[str, int] = field(default_factory=dict)
    #: When set (by ``persist()``), locations and interactions are laid out by user in
    #: this many partitions each: partition ``i`` of both holds every record of its
    #: users and of no other, so per-user work runs partition by partition, unshuffled.
    user_parts: int | None = None


@dataclass(frozen=True)
class Shared:
    """A small object broadcast to every partition task.

    ``value`` is the local object (used to derive output schemas), ``delayed`` the graph
    task (or the scattered future) that yields it on the workers.
    """

    value: Any
    delayed: Delayed | Future


def shared_once(t: DaskTables, key: Any, build: Callable[[], Any]) -> Shared:
    """``share(build())`` for ``t``'s client, built and broadcast once per ``key`` (kept in
    ``t.cache``): the grid indexes every analysis of a radius reuses."""
    if key not in t.cache:
        t.cache[key] = share(build(), client=t.client)
    return t.cache[key]


def share(value: Any, client: Any = None) -> Shared:
    """Wrap ``value`` as a single graph task that every partition task depends on.

    With a ``client``, ``value`` is instead scattered to every worker once (``broadcast``):
    for objects of megabytes (the grid index of tens of thousands of establishments) that
    keeps the task graph small. A replica survives on every worker, so losing a worker
    loses nothing; a worker joining later fetches it from a peer.
    """
    import dask

    if client is not None:
        return Shared(value, client.scatter(value, broadcast=True, hash=False))
    return Shared(value, dask.delayed(value, pure=True, traverse=False))


def map_kernel(frame: dd.DataFrame, kernel: Callable[..., pd.DataFrame], *shared: Shared,
               required_columns: Sequence[str] | None = None, **kwargs: Any) -> dd.DataFrame:
    """``kernel(partition, *shared values, **kwargs)`` on every partition.

    The output schema is ``kernel`` applied to the empty input schema, so it is exactly
    what the pandas reference produces on an empty frame.
    """
    meta = kernel(frame._meta, *(s.value for s in shared), **kwargs)
    return frame.map_partitions(
        kernel, *(s.delayed for s in shared), meta=meta,
        required_columns=list(required_columns) if required_columns is not None else None,
        **kwargs,
    )


def map_aligned(frames: Sequence[dd.DataFrame], kernel: Callable[..., pd.DataFrame],
                *shared: Shared, **kwargs: Any) -> dd.DataFrame:
    """``kernel(partition i of each frame..., *shared values, **kwargs)`` for every ``i``.

    For frames laid out alike (``DaskTables.user_parts``): partition ``i`` of each frame
    holds the same users. The output schema comes from the empty input schemas.
    """
    import dask.dataframe as dd

    if len({f.npartitions for f in frames}) != 1:
        raise ValueError("map_aligned needs frames with the same number of partitions, got "
                         f"{[f.npartitions for f in frames]}")
    meta = kernel(*(f._meta for f in frames), *(s.value for s in shared), **kwargs)
    return dd.map_partitions(kernel, *frames, *(s.delayed for s in shared), meta=meta,
                             align_dataframes=False, **kwargs)


def _identity(df: pd.DataFrame) -> pd.DataFrame:
    return df


def tree_reduce(partial: dd.DataFrame, *, combine: Callable[[pd.DataFrame], pd.DataFrame],
                aggregate: Callable[[pd.DataFrame], pd.DataFrame],
                split_every: int | None = None) -> dd.DataFrame:
    """Combine per-partition results in a tree; ``aggregate`` gives the single final partition.

    ``combine`` and ``aggregate`` receive the concatenation of several partial results
    (empty ones left out). The result is a one-partition Dask DataFrame.
    """
    meta = aggregate(partial._meta)
    return partial.reduction(
        chunk=_identity, combine=combine, aggregate=aggregate, meta=meta,
        split_every=split_every or SPLIT_EVERY,
    )


def resum(df: pd.DataFrame, *, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Sum ``values`` per ``keys`` (combine step of summable counts)."""
    if df.empty:
        return df[[*keys, *values]]
    return df.groupby(list(keys), sort=False, as_index=False, dropna=False)[list(values)].sum()


def strings_as_objects(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns as numpy ``object`` (what the pandas kernels and results use).

    Workers whose Dask configuration converts strings to pyarrow-backed dtypes would
    otherwise hand the kernels (and the results) a different dtype than pandas.
    """
    conv = {c: object for c, t in df.dtypes.items() if isinstance(t, pd.StringDtype)}
    if not conv:
        return df
    out = df.astype(conv)
    for c in conv:
        out[c] = out[c].where(out[c].notna(), None)
    return out


def no_string_conversion() -> Any:
    """Context in which Dask keeps text columns as ``object`` (as the pandas engine does)."""
    import dask

    return dask.config.set({"dataframe.convert-string": False})


def shuffle_method(method: str | None, rows: int | None) -> str | None:
    """The shuffle method for about ``rows`` rows (``method`` wins when given)."""
    if method is not None:
        return method
    if rows is not None and rows < TASK_SHUFFLE_MAX_ROWS:
        return "tasks"
    return None  # Dask's default: p2p on a distributed cluster


def persist_partitions(rows: int | None, threads: int, current: int) -> int:
    """Partitions for ``rows`` locations laid out by user on ``threads`` worker threads:
    about ``PERSIST_PARTITION_ROWS`` rows each, a multiple of the threads (every thread
    gets as many partitions), at least one per thread; ``current`` when rows are unknown."""
    if rows is None:
        return max(1, current)
    threads = max(1, threads)
    n = max(1, -(-rows // PERSIST_PARTITION_ROWS))
    return -(-n // threads) * threads


def lay_out_by_user(t: DaskTables, *, npartitions: int | None = None,
                    method: str | None = None) -> DaskTables:
    """``t`` with locations and interactions hash-partitioned alike by user (lazy).

    Both tables get the same number of partitions (``npartitions``, else as many as the
    locations have) through the same shuffle, so a user's records all land in the same
    partition ``i`` of both: visitors can then be counted, visits attributed and profiles
    finished partition by partition (``user_parts``). Each partition of the locations is
    then stored in grid-cell order, with user codes (:func:`store_locations`). ``t``
    comes back unchanged when the two ``user_id`` columns have different types (their
    hashes would not agree).
    """
    import dataclasses

    loc, inter = t.locations, t.interactions
    if loc._meta["user_id"].dtype != inter._meta["user_id"].dtype:
        return t
    n = npartitions or max(1, loc.npartitions)
    rows = (t.rows.get("locations") or 0) + (t.rows.get("interactions") or 0) or None
    locations = by_user(loc, n, method, rows).map_partitions(
        store_locations, meta=store_locations(loc._meta))
    return dataclasses.replace(t, locations=locations,
                               interactions=by_user(inter, n, method, rows), user_parts=n)


def store_locations(locations: pd.DataFrame) -> pd.DataFrame:
    """A partition of the locations as ``persist()`` stores it: in the order of the visit
    radius's grid cells (:func:`geo.cell_order`), with the user's code in the partition
    (column :data:`USER_CODE`).

    Neither changes a result. The order of stored records matters to no kernel (each
    sorts or counts what it needs), but the proximity look-ups then read the grid index
    and the establishments' coordinates in runs: visit totals of 2.5M records took 88-97
    ms in cell order against 109-114 ms as shuffled by user (one process); at 1e7
    persisted records Dask's visits 0.260 s against 0.293 s, the visit profile 0.326 s
    against 0.374 s, attribution and recommendations unchanged. The user codes spare the
    visit totals a hash of each visit's user id string (14 ms of ~80 per 2.5M records):
    Dask's visits 0.251 -> 0.237 s at 1e7.
    """
    import numpy as np

    from adanalytics.geo import cell_order
    from adanalytics.semantics import VISIT_RADIUS_M

    order = cell_order(locations["lat"].to_numpy(np.float64),
                       locations["lon"].to_numpy(np.float64), VISIT_RADIUS_M)
    out = locations.take(order).reset_index(drop=True)
    out[USER_CODE] = pd.factorize(out["user_id"].to_numpy())[0].astype(np.int64)
    return out


def by_user(frame: dd.DataFrame, npartitions: int | None, method: str | None,
            rows: int | None) -> dd.DataFrame:
    """``frame`` hash-shuffled on ``user_id`` (into ``npartitions``, else as many as it
    has), with the method for about ``rows`` rows (:func:`shuffle_method`)."""
    n = npartitions or max(1, frame.npartitions)
    return frame.shuffle("user_id", npartitions=n, shuffle_method=shuffle_method(method, rows),
                         ignore_index=True)


def _same(part: pd.DataFrame) -> pd.DataFrame:
    return part


def co_locate(client: Any, anchor: dd.DataFrame, frame: dd.DataFrame) -> dd.DataFrame:
    """The persisted ``frame`` with its partition ``i`` held by the worker that holds
    partition ``i`` of the persisted ``anchor`` (moved there once).

    Two shuffles place their outputs independently (Dask's peer-to-peer shuffle even
    rotates the workers from one shuffle to the next): laid out alike by user, the
    locations and interactions would otherwise sit on different workers and every
    per-user analysis would move the interactions again. A moved partition may be
    recomputed on any worker if its worker is lost.
    """
    import dask.dataframe as dd
    from distributed import futures_of, wait

    def by_part(f: dd.DataFrame) -> list[Any]:
        return sorted(futures_of(f), key=lambda fut: fut.key[1])

    anchors, parts = by_part(anchor), by_part(frame)
    if len(anchors) != len(parts) or len(parts) != frame.npartitions:
        return frame
    who_has = client.who_has([*anchors, *parts])
    placed = []
    for a, p in zip(anchors, parts, strict=True):
        home = list(who_has.get(a.key) or ())
        if not home or set(home) & set(who_has.get(p.key) or ()):
            placed.append(p)
        else:
            placed.append(client.submit(_same, p, workers=home[:1], allow_other_workers=True,
                                        pure=False))
    if all(x is y for x, y in zip(placed, parts, strict=True)):
        return frame
    with no_string_conversion():
        moved = client.persist(dd.from_delayed(placed, meta=frame._meta, verify_meta=False))
    wait(moved)
    return moved
