"""Reading and validating a dataset into Dask DataFrames.

The small dimension tables (campaigns, ads, establishments) go through the pandas
reference pipeline (:mod:`adanalytics.engines.pandas.load`). The big fact tables
(interactions, locations) are read lazily with column projection and validated per
partition by the pandas kernel :func:`~adanalytics.engines.pandas.validate.check_table`,
against the broadcast keys of their valid parents. One pass at load time counts the
broken rules (so ``on_invalid="raise"`` fails at open with the same report as pandas);
the valid rows are then a lazy per-partition filter of the same kernel.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics import io, schema
from adanalytics.engines.dask.plan import (
    DaskTables,
    map_kernel,
    share,
    strings_as_objects,
)
from adanalytics.engines.pandas import load as pload
from adanalytics.engines.pandas.validate import _CANONICAL_INT, check_table
from adanalytics.errors import DataContractError
from adanalytics.schema import REJECT_RULE_COLUMN, ValidationReport

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger("adanalytics")

#: Rejected rows of one table up to this count are collected and written like the
#: pandas engine does (one Parquet file); beyond it they are written per partition.
COLLECT_REJECTED_MAX = 1_000_000
#: Rows per partition of in-memory tables (``from_frames``).
FRAME_PARTITION_ROWS = 1_000_000
#: Target size of a partition read from CSV.
CSV_BLOCKSIZE = "128MiB"

# --- per-partition kernels ------------------------------------------------------------


def prepare(part: pd.DataFrame, *, int_ids: list[str], text_ids: list[str],
            str_ids: list[str]) -> pd.DataFrame:
    """Kernel: raw partition -> the raw frame the pandas pipeline would have checked.

    ``int_ids``: CSV id columns that are canonical integers in *every* partition (so
    the whole column becomes int64, as ``ids_as_ints_if_canonical`` decides for a whole
    table); ``text_ids``: the other CSV id columns; ``str_ids``: joined id columns turned
    into strings because the other side of the join is not integer (``harmonise_ids``).
    """
    out = strings_as_objects(part)
    if int_ids or text_ids or str_ids:
        out = out.copy()
    for col in int_ids:
        out[col] = out[col].astype(np.int64)
    for col in text_ids:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    for col in str_ids:
        out[col] = out[col].astype(object).map(lambda v: None if pd.isna(v) else str(v))
    return out


def valid_rows(part: pd.DataFrame, parents: dict[str, pd.Index], *, table: str,
               prep: dict[str, list[str]], drop_invalid: bool) -> pd.DataFrame:
    """Kernel: the valid rows of a raw partition, coerced to the contract types."""
    checked = check_table(table, prepare(part, **prep), parents)
    if drop_invalid:
        checked = checked.loc[checked[REJECT_RULE_COLUMN].isna().to_numpy()]
    out = checked[schema.columns(table)].reset_index(drop=True)
    for col in schema.id_columns(table):  # nullable ints (nulls rejected) -> int64, as pandas
        if isinstance(out[col].dtype, pd.Int64Dtype):
            out[col] = out[col].astype(np.int64)
    return out


def rejected_part(part: pd.DataFrame, parents: dict[str, pd.Index], *, table: str,
                  prep: dict[str, list[str]]) -> pd.DataFrame:
    """Kernel: the invalid rows of a raw partition as text, with the rule each broke."""
    raw = prepare(part, **prep)
    return pload.rejected_rows(raw, check_table(table, raw, parents), table)


def summarise(part: pd.DataFrame, parents: dict[str, pd.Index], *, table: str,
              prep: dict[str, list[str]]) -> dict[str, Any]:
    """Kernel: valid row count, count of each broken rule and its first example rows."""
    raw = prepare(part, **prep)
    rules = check_table(table, raw, parents)[REJECT_RULE_COLUMN]
    bad = rules.notna().to_numpy()
    counts = {str(k): int(v) for k, v in rules[bad].value_counts().items()}
    examples = {
        r: raw.loc[(rules == r).to_numpy(), schema.columns(table)].head(schema.N_EXAMPLES)
        for r in counts
    }
    return {"valid": int((~bad).sum()), "counts": counts, "examples": examples}


def merge_summaries(*parts: dict[str, Any]) -> dict[str, Any]:
    """Merge partition summaries, keeping partition order (first examples win)."""
    out: dict[str, Any] = {"valid": 0, "counts": {}, "examples": {}}
    for p in parts:
        out["valid"] += p["valid"]
        for r, n in p["counts"].items():
            out["counts"][r] = out["counts"].get(r, 0) + n
        for r, ex in p["examples"].items():
            have = out["examples"].get(r)
            if have is None:
                out["examples"][r] = ex
            elif len(have) < schema.N_EXAMPLES:
                out["examples"][r] = pd.concat([have, ex]).head(schema.N_EXAMPLES)
    return out


def id_profile(part: pd.DataFrame, *, columns: list[str]) -> dict[str, tuple[int, bool, int]]:
    """Kernel (CSV): per id column, (non-null count, all canonical integers, null count)."""
    out = {}
    for col in columns:
        s = part[col]
        nn = s.dropna()
        canonical = bool(nn.astype(str).str.match(_CANONICAL_INT).all()) if len(nn) else True
        out[col] = (len(nn), canonical, len(s) - len(nn))
    return out


def merge_id_profiles(*parts: dict[str, tuple[int, bool, int]]) -> dict[str, tuple[int, bool, int]]:
    """Merge :func:`id_profile` results."""
    out: dict[str, tuple[int, bool, int]] = {}
    for p in parts:
        for col, (n, canon, na) in p.items():
            n0, c0, na0 = out.get(col, (0, True, 0))
            out[col] = (n0 + n, c0 and canon, na0 + na)
    return out


# --- reading ---------------------------------------------------------------------------


def nullable_ints(arrow_type: Any) -> Any:
    """``types_mapper`` of Parquet reads: integer columns as nullable ``Int64``.

    An integer id column with a null would otherwise arrive as float64 in the partitions
    holding the null (and int64 elsewhere); ``io.read_pandas`` reads such columns the
    same way, and the null rows are rejected by validation.
    """
    import pyarrow as pa

    return pd.Int64Dtype() if pa.types.is_integer(arrow_type) else None


def read_table(src: io.TableSource, storage_options: dict[str, Any] | None,
               blocksize: str | int | None = None) -> tuple[dd.DataFrame, int | None]:
    """A big table as a lazy Dask DataFrame of the contract's columns (raw types), and
    its row count when the file metadata tells it (Parquet)."""
    import dask.dataframe as dd

    opts = io.storage_options_for(src.url, storage_options)
    cols = schema.columns(src.name)
    if src.format == "parquet":
        import pyarrow.dataset as pads

        fs, _ = io.filesystem(src.url, storage_options)
        try:
            dset = pads.dataset(src.path, filesystem=fs, format="parquet", partitioning="hive")
            names = dset.schema.names
            rows = dset.count_rows()
        except Exception as exc:  # pyarrow raises several types for unreadable files
            msg = f"table '{src.name}': cannot read Parquet at {src.url}: {exc}"
            raise DataContractError(msg) from exc
        io.check_columns(src, names)
        kwargs: dict[str, Any] = {}
        if blocksize is not None:
            kwargs["blocksize"] = blocksize
        frame = dd.read_parquet(src.url, columns=cols, storage_options=opts, index=False,
                                arrow_to_pandas={"types_mapper": nullable_ints}, **kwargs)
        return frame, rows
    try:
        frame = dd.read_csv(
            src.url, dtype=str, keep_default_na=False, na_values=[""],
            blocksize=None if src.compression else (blocksize or CSV_BLOCKSIZE),
            compression=src.compression, storage_options=opts,
        )
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        msg = f"table '{src.name}': cannot read CSV at {src.url}: {exc}"
        raise DataContractError(msg) from exc
    io.check_columns(src, list(frame.columns))
    return frame[cols], None


def _tree(fn: Any, items: list[Any], fan_in: int = 8) -> Any:
    import dask

    merge = dask.delayed(fn, pure=True)
    while len(items) > 1:
        items = [merge(*items[i:i + fan_in]) for i in range(0, len(items), fan_in)]
    return items[0]


def _compute(client: Client, table: str, url: str, obj: Any) -> Any:
    """Compute on ``client``; a file that cannot be parsed is an error naming the table."""
    import pyarrow as pa

    try:
        return client.compute(obj, sync=True)
    except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        msg = f"table '{table}': cannot read {url}: {type(exc).__name__}: {exc}"
        raise DataContractError(msg) from exc


def _csv_id_types(client: Client, raw: dd.DataFrame, table: str,
                  url: str) -> tuple[dict[str, list[str]], int]:
    """Decide over the whole CSV table which id columns are integers (as
    ``ids_as_ints_if_canonical`` does for a whole column); also count its rows."""
    import dask

    ids = schema.id_columns(table)
    parts = [dask.delayed(id_profile, pure=True)(p, columns=ids) for p in raw.to_delayed()]
    prof = _compute(client, table, url, _tree(merge_id_profiles, parts))
    ints = [c for c in ids if prof[c][0] > 0 and prof[c][1] and not prof[c][2]]
    rows = prof[ids[0]][0] + prof[ids[0]][2]
    return {"int_ids": ints, "text_ids": [c for c in ids if c not in ints]}, rows


def _probe(dtypes: pd.Series, rows: int) -> pd.DataFrame:
    """A frame with ``dtypes`` and one row (zero for an empty table): enough for
    :func:`~adanalytics.engines.pandas.load.harmonise_ids`, which decides on id types and
    emptiness only."""
    cols = {}
    for c, d in dtypes.items():
        if isinstance(d, np.dtype):
            cols[c] = pd.Series(np.zeros(min(rows, 1), dtype=d))
        else:
            cols[c] = pd.Series(pd.array([None] * min(rows, 1), dtype=d))
    return pd.DataFrame(cols)


def harmonise(small: dict[str, pd.DataFrame], big_meta: dict[str, pd.DataFrame],
              big_rows: dict[str, int]) -> dict[str, dict[str, list[str]]]:
    """Apply the pandas id harmonisation to the small tables (in place) and return, per
    big table, the id columns to cast to int64 (``int_ids``) or to text (``str_ids``)."""
    frames: dict[str, pd.DataFrame] = dict(small)
    for t, meta in big_meta.items():
        frames[t] = _probe(meta[schema.id_columns(t)].dtypes, big_rows[t])
    before = {t: frames[t].dtypes.copy() for t in big_meta}
    pload.harmonise_ids(frames)
    small.update({t: frames[t] for t in small})
    out: dict[str, dict[str, list[str]]] = {}
    for t in big_meta:
        after = frames[t].dtypes
        changed = [c for c in schema.id_columns(t) if after[c] != before[t][c]]
        out[t] = {
            "int_ids": [c for c in changed if pd.api.types.is_integer_dtype(after[c])],
            "str_ids": [c for c in changed if not pd.api.types.is_integer_dtype(after[c])],
        }
    return out


def _parents(table: str, small: dict[str, pd.DataFrame]) -> dict[str, pd.Index]:
    """Valid primary keys of the parents of ``table`` (only interactions -> ads)."""
    out = {}
    for r in schema.rules_for(table):
        if r.references is not None:
            parent, col = r.references
            out[parent] = pd.Index(small[parent][col])
    return out


def load(client: Client, path: str, *, on_invalid: str, rejected_path: str | None,
         storage_options: dict[str, Any] | None, blocksize: str | int | None = None,
         ) -> tuple[DaskTables, ValidationReport, dict[str, Any]]:
    """Read, coerce and validate the five tables of ``path``.

    Returns the tables (big ones lazy), the validation report (identical to the pandas
    engine's) and the rejected rows per table (pandas frames; a Dask DataFrame for a
    table with more than ``COLLECT_REJECTED_MAX`` of them).
    """
    import dask

    sources = io.locate_tables(path, storage_options)
    raw_small = {t: io.read_pandas(sources[t], storage_options) for t in schema.DIMENSION_TABLES}
    for t in schema.DIMENSION_TABLES:
        if sources[t].format == "csv":
            for col in schema.id_columns(t):
                raw_small[t][col] = pload.ids_as_ints_if_canonical(raw_small[t][col])
    raw_big: dict[str, dd.DataFrame] = {}
    rows: dict[str, int] = {}
    prep: dict[str, dict[str, list[str]]] = {}
    for t in schema.FACT_TABLES:
        raw_big[t], n = read_table(sources[t], storage_options, blocksize)
        if sources[t].format == "csv":
            prep[t], rows[t] = _csv_id_types(client, raw_big[t], t, sources[t].url)
        else:
            prep[t], rows[t] = {"int_ids": [], "text_ids": []}, int(n or 0)
    metas = {t: prepare(raw_big[t]._meta, **prep[t], str_ids=[]) for t in schema.FACT_TABLES}
    for t, cast in harmonise(raw_small, metas, rows).items():
        prep[t]["int_ids"] += cast["int_ids"]
        prep[t]["text_ids"] = [c for c in prep[t]["text_ids"] if c not in cast["int_ids"]]
        prep[t]["str_ids"] = cast["str_ids"]

    # The pandas pipeline validates the small tables (and harmonises their ids); the big
    # ones enter it only as empty frames of the right types.
    raw = dict(raw_small)
    for t, frame in raw_big.items():
        raw[t] = prepare(frame._meta, **prep[t])
    valid_small, rejected, report = pload.validate_frames(raw)
    small = {t: valid_small[t] for t in schema.DIMENSION_TABLES}

    big: dict[str, dd.DataFrame] = {}
    for t in schema.FACT_TABLES:
        parents = share(_parents(t, small))
        parts = [dask.delayed(summarise, pure=True)(p, parents.delayed, table=t, prep=prep[t])
                 for p in raw_big[t].to_delayed()]
        summary = _compute(client, t, sources[t].url, _tree(merge_summaries, parts))
        report.rows[t] = summary["valid"]
        for r in schema.rules_for(t):
            if r.name in summary["counts"]:
                report.violations.append(schema.RuleViolation(
                    t, r.name, summary["counts"][r.name],
                    summary["examples"][r.name].reset_index(drop=True)))
        n_bad = sum(summary["counts"].values())
        big[t] = map_kernel(raw_big[t], valid_rows, parents, table=t, prep=prep[t],
                            drop_invalid=n_bad > 0)
        if n_bad and on_invalid == "quarantine":
            rej = map_kernel(raw_big[t], rejected_part, parents, table=t, prep=prep[t])
            rejected[t] = (_compute(client, t, sources[t].url, rej).reset_index(drop=True)
                           if n_bad <= COLLECT_REJECTED_MAX else rej)

    finish(report, rejected, on_invalid, rejected_path, storage_options)
    tables = DaskTables(
        **{t: _small_frame(df) for t, df in small.items()}, **big, small=small,
        rows=dict(report.rows),
    )
    return tables, report, rejected


def finish(report: ValidationReport, rejected: dict[str, Any], on_invalid: str,
           rejected_path: str | None, storage_options: dict[str, Any] | None) -> None:
    """Raise or quarantine as the pandas engine does; large rejected sets are written
    per partition (``<table>.parquet/`` directory) instead of one file."""
    in_memory = {t: df for t, df in rejected.items() if isinstance(df, pd.DataFrame)}
    pload.finish_validation(report, in_memory, on_invalid, rejected_path, storage_options)
    if report.ok or rejected_path is None:
        return
    for t, df in rejected.items():
        if not isinstance(df, pd.DataFrame):
            url = f"{rejected_path.rstrip('/')}/{t}.parquet"
            df.to_parquet(url, storage_options=io.storage_options_for(url, storage_options),
                          write_index=False, name_function=part_name)


def part_name(i: int) -> str:
    """File name of partition ``i`` of a written table (zero-padded: sorts in order)."""
    return f"part-{i:05d}.parquet"


def _small_frame(df: pd.DataFrame) -> dd.DataFrame:
    import dask.dataframe as dd

    return dd.from_pandas(df, npartitions=1, sort=False)


def from_frames(data: dict[str, Any], *, on_invalid: str, rejected_path: str | None = None,
                npartitions: int | None = None) -> tuple[DaskTables, ValidationReport,
                                                         dict[str, pd.DataFrame]]:
    """Tables from in-memory data (dicts of columns or pandas DataFrames).

    Validated with the pandas pipeline, then split into partitions (at least 2 for the
    big tables, so per-partition code paths are always exercised).
    """
    import dask.dataframe as dd

    raw = pload.frames_from_dicts(data)
    valid, rejected, report = pload.validate_frames(raw)
    pload.finish_validation(report, rejected, on_invalid, rejected_path, None)
    big = {}
    for t in schema.FACT_TABLES:
        n = npartitions or max(2, math.ceil(len(valid[t]) / FRAME_PARTITION_ROWS))
        big[t] = dd.from_pandas(valid[t], npartitions=n, sort=False)
    small = {t: valid[t] for t in schema.DIMENSION_TABLES}
    tables = DaskTables(**{t: _small_frame(df) for t, df in small.items()}, **big, small=small,
                        rows=dict(report.rows))
    return tables, report, rejected
