"""Finding and reading the five tables of a dataset directory (local or ``s3://``).

A table ``NAME`` is ``NAME.parquet`` (file or directory), a Parquet directory ``NAME/``,
``NAME.csv`` or ``NAME.csv.gz``. Everything goes through fsspec, so any URL fsspec knows
works; S3 endpoints come from ``storage_options`` or ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adanalytics import schema
from adanalytics.errors import DataContractError

if TYPE_CHECKING:
    import fsspec
    import pandas as pd

FORMS = ("{name}.parquet", "{name}/", "{name}.csv", "{name}.csv.gz")


@dataclass(frozen=True)
class TableSource:
    """Where a table lives and in which format."""

    name: str
    url: str  # full URL/path as the user would write it
    path: str  # path inside the filesystem
    format: str  # "parquet" | "csv"
    is_dir: bool
    compression: str | None = None


def storage_options_for(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """fsspec options for ``url``: the given ones, plus an S3 endpoint from the env."""
    opts = dict(storage_options or {})
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url.startswith(("s3://", "s3a://")) and endpoint and "endpoint_url" not in opts:
        client_kwargs = dict(opts.get("client_kwargs", {}))
        client_kwargs.setdefault("endpoint_url", endpoint)
        opts["client_kwargs"] = client_kwargs
    return opts


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path inside it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options_for(url, storage_options))
    return fs, path


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def locate_tables(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, TableSource]:
    """Find all five tables under ``url``; a missing one is an error naming the forms tried."""
    fs, root = filesystem(url, storage_options)
    try:
        if not fs.isdir(root):
            msg = f"dataset directory {url!r} does not exist (or is not a directory)"
            raise DataContractError(msg)
        entries = {e.rstrip("/").rsplit("/", 1)[-1]: e for e in fs.ls(root, detail=False)}
    except (FileNotFoundError, PermissionError, OSError) as exc:
        msg = f"cannot list dataset directory {url!r}: {exc}"
        raise DataContractError(msg) from exc
    prefix = url.rstrip("/")
    found: dict[str, TableSource] = {}
    missing: list[str] = []
    for name in schema.TABLE_NAMES:
        src = None
        for fname, fmt, comp in (
            (f"{name}.parquet", "parquet", None),
            (name, "parquet", None),
            (f"{name}.csv", "csv", None),
            (f"{name}.csv.gz", "csv", "gzip"),
        ):
            if fname in entries:
                path = _join(root, fname)
                src = TableSource(name, f"{prefix}/{fname}", path, fmt, fs.isdir(path), comp)
                break
        if src is None:
            missing.append(name)
        else:
            found[name] = src
    if missing:
        forms = ", ".join(f.format(name="NAME") for f in FORMS)
        msg = (
            f"dataset {url!r} is missing table(s): {', '.join(missing)}. Expected each of "
            f"{', '.join(schema.TABLE_NAMES)} as one of: {forms}."
        )
        raise DataContractError(msg)
    return found


def check_columns(src: TableSource, present: list[str]) -> None:
    """Raise naming the missing columns of a table (and what was expected)."""
    expected = schema.columns(src.name)
    missing = [c for c in expected if c not in present]
    if missing:
        msg = (
            f"table '{src.name}' ({src.url}) is missing column(s): {', '.join(missing)}; "
            f"expected columns: {', '.join(expected)} (found: {', '.join(present) or 'none'})"
        )
        raise DataContractError(msg)


def read_pandas(src: TableSource, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a table into pandas, projected to the contract's columns (raw types)."""
    import pandas as pd

    fs, _ = filesystem(src.url, storage_options)
    cols = schema.columns(src.name)
    if src.format == "parquet":
        import pyarrow as pa
        import pyarrow.dataset as pads

        try:
            dset = pads.dataset(src.path, filesystem=fs, format="parquet", partitioning="hive")
        except Exception as exc:  # pyarrow raises several types for unreadable files
            msg = f"table '{src.name}': cannot read Parquet at {src.url}: {exc}"
            raise DataContractError(msg) from exc
        check_columns(src, dset.schema.names)
        table = dset.to_table(columns=cols)
        df = table.to_pandas()
        # An integer id column with nulls would come back as float64 (1 -> 1.0, later
        # "1.0" != "1"): keep it integer (nullable) - the null rows are rejected anyway.
        for col in schema.id_columns(src.name):
            column = table.column(col)
            if pa.types.is_integer(column.type) and column.null_count:
                df[col] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get)
        return df
    with fs.open(src.path, "rb", compression=src.compression) as fh:
        try:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            msg = f"table '{src.name}': cannot read CSV at {src.url}: {exc}"
            raise DataContractError(msg) from exc
    check_columns(src, list(df.columns))
    return df[cols]
