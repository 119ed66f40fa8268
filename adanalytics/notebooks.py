"""The notebooks of ``notebooks/``: the helpers their cells call, and running them headless.

Every notebook answers one question through the public API only; what a cell needs
beyond ``open_dataset``/``to_pandas``/``plots`` lives here so that no notebook carries
logic of its own:

- :func:`connect` opens (and persists) a dataset on the engine and cluster given by the
  parameters cell, and shows where it runs, with the dashboard link;
- :func:`resolve_data_path` turns an empty ``data_path`` into a small generated sample;
- :func:`show`, :func:`table`, :func:`timer` display a chart, a table, a timing;
- :func:`user_locations`, :func:`small_table` fetch what maps need from any engine.

Headless execution: :func:`execute_notebook` / :func:`execute_notebooks` (papermill, with
start and execution timeouts) and :func:`strip_outputs` (notebooks are committed clean).

>>> from adanalytics import notebooks as nbh
>>> nbh.execute_notebooks("out/executed", {"data_path": "data/sample"})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from adanalytics.errors import AdAnalyticsError
from adanalytics.questions import QUESTIONS, Question
from adanalytics.semantics import DEFAULT_TZ

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from matplotlib.figure import Figure

    from adanalytics.dataset import Dataset

#: Location records of the sample generated when ``data_path`` is empty.
SAMPLE_SCALE = 50_000
SAMPLE_SEED = 0
#: Papermill defaults: seconds for the kernel to start, and for any one cell.
START_TIMEOUT_S = 180
EXECUTION_TIMEOUT_S = 1800
#: The parameters every notebook takes (its cell tagged ``parameters``).
PARAMETERS: tuple[str, ...] = ("data_path", "engine", "address", "tz", "top_n")


class NotebookError(AdAnalyticsError):
    """A notebook failed while running headless (the executed copy shows where)."""


@dataclass(frozen=True)
class NotebookInfo:
    """One notebook of ``notebooks/``."""

    number: int
    stem: str
    engine: str  # its default engine: the assignment's

    @property
    def filename(self) -> str:
        return f"{self.stem}.ipynb"

    @property
    def question(self) -> Question:
        return QUESTIONS[self.number - 1]


NOTEBOOKS: tuple[NotebookInfo, ...] = (
    NotebookInfo(1, "01_campaign_ctr", "dask"),
    NotebookInfo(2, "02_establishment_visits", "spark"),
    NotebookInfo(3, "03_interaction_visit_correlation", "dask"),
    NotebookInfo(4, "04_ad_attractiveness", "spark"),
    NotebookInfo(5, "05_interaction_profile", "dask"),
    NotebookInfo(6, "06_visit_profile", "spark"),
    NotebookInfo(7, "07_realtime_recommendation", "spark"),
)


def notebooks_dir() -> Path:
    """The ``notebooks/`` directory of the source tree (``$ADANALYTICS_NOTEBOOKS`` wins)."""
    env = os.environ.get("ADANALYTICS_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "notebooks"


def select(which: Sequence[str | int] | None = None) -> list[NotebookInfo]:
    """Notebooks by number (``1``, ``"01"``) or stem; all when ``which`` is empty."""
    if not which:
        return list(NOTEBOOKS)
    out = []
    for w in which:
        text = str(w).strip().removesuffix(".ipynb")
        found = [nb for nb in NOTEBOOKS
                 if text in (nb.stem, str(nb.number), f"{nb.number:02d}")]
        if not found:
            names = ", ".join(nb.stem for nb in NOTEBOOKS)
            msg = f"no notebook {w!r}; choose numbers 1-7 or names among {names}"
            raise ValueError(msg)
        out.extend(f for f in found if f not in out)
    return out


# --- data and connection ----------------------------------------------------------------
def resolve_data_path(data_path: str | os.PathLike[str] | None, scale: int | str = SAMPLE_SCALE,
                      seed: int = SAMPLE_SEED) -> str:
    """``data_path`` itself, or (when empty) a generated sample in the temp directory,
    shared by every notebook of the machine and made only once."""
    if data_path:
        return str(data_path)
    from adanalytics.synth import generate

    target = Path(tempfile.gettempdir()) / f"adanalytics-sample-{scale}-{seed}"
    if (target / "truth.json").exists():
        return str(target)
    # generate beside it, then rename: notebooks started together never see half a sample
    work = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
    try:
        generate(work / "data", scale=scale, seed=seed)
        try:
            os.rename(work / "data", target)
        except OSError:  # another notebook got there first
            if not (target / "truth.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(target)


def connection_kwargs(engine: str, address: str | None) -> dict[str, str]:
    """``open_dataset`` connection options for the notebooks' single ``address``
    parameter: the Dask scheduler (``address=``) or the Spark master (``master=``)."""
    if not address:
        return {}
    if engine == "dask":
        return {"address": address}
    if engine == "spark":
        return {"master": address}
    return {}


def dashboard_link(ds: Dataset) -> str | None:
    """The engine's dashboard: Dask's Bokeh status page, or the Spark UI. Inside a
    JupyterHub server, the Dask dashboard is given through the server's proxy."""
    eng = ds.engine
    if eng.name == "dask":
        link = getattr(eng, "dashboard_link", None)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if link and prefix:
            from urllib.parse import urlsplit

            port = urlsplit(link).port
            if port:
                return f"{prefix.rstrip('/')}/proxy/{port}/status"
        return link
    if eng.name == "spark":
        with contextlib.suppress(Exception):
            return eng.spark.sparkContext.uiWebUrl
    return None


def describe_connection(ds: Dataset) -> dict[str, Any]:
    """Engine, where it runs, dashboard and the rows of each table."""
    eng = ds.engine
    where = "in-process"
    workers: int | None = None
    if eng.name == "dask":
        where = str(getattr(eng, "address", None) or "embedded local cluster")
        with contextlib.suppress(Exception):
            info = eng.client.scheduler_info()
            workers = len(info.get("workers", {}))
            where = info.get("address", where) if not getattr(eng, "address", None) else where
    elif eng.name == "spark":
        with contextlib.suppress(Exception):
            sc = eng.spark.sparkContext
            where = sc.master
            workers = max(len(sc._jsc.sc().getExecutorMemoryStatus()) - 1, 0) or None
    return {"engine": eng.name, "where": where, "workers": workers,
            "dashboard": dashboard_link(ds), "tz": ds.tz, "data": ds.source,
            "rows": dict(ds.validation.rows),
            "load_seconds": getattr(ds, "load_seconds", None)}


def connect(data_path: str | None, engine: str, address: str | None = None,
            tz: str = DEFAULT_TZ, persist: bool = True, show_info: bool = True,
            **kwargs: Any) -> Dataset:
    """Open the notebook's dataset on its engine (embedded, or the cluster at
    ``address``), persist it into (cluster) memory and show the connection."""
    import adanalytics as aa

    path = resolve_data_path(data_path)
    t0 = time.perf_counter()
    ds = aa.open_dataset(path, engine=engine, tz=tz, **connection_kwargs(engine, address),
                         **kwargs)
    if persist:
        ds.persist()
    ds.ready_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    if show_info:
        display_html(connection_html(ds))
    return ds


def connection_html(ds: Dataset) -> str:
    """An HTML summary of :func:`describe_connection` (with a clickable dashboard link)."""
    info = describe_connection(ds)
    dash = info["dashboard"]
    link = (f"<a href='{html.escape(dash)}' target='_blank'>{html.escape(dash)}</a>"
            if dash else "none")
    workers = f", {info['workers']} workers" if info["workers"] else ""
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(t)}</td><td>{n:,}</td></tr>"
                   for t, n in info["rows"].items())
    secs = getattr(ds, "ready_seconds", None)
    ready = f" in {secs:.1f} s" if secs is not None else ""
    return (f"<div><b>Engine</b>: {html.escape(info['engine'])} on "
            f"{html.escape(str(info['where']))}{workers}<br>"
            f"<b>Dashboard</b>: {link}<br>"
            f"<b>Data</b>: {html.escape(str(info['data']))} (time zone {html.escape(info['tz'])}), "
            f"validated and persisted{ready}"
            f"<table><tr><th>table</th><th>rows</th></tr>{rows}</table></div>")


def small_table(ds: Dataset, name: str) -> pd.DataFrame:
    """A (small) input table of the dataset in pandas: campaigns, ads, establishments."""
    from adanalytics import to_pandas

    return to_pandas(getattr(ds.tables, name))


def names(ds: Dataset, table: str) -> pd.Series:
    """id -> name of the campaigns or establishments (chart and table labels)."""
    df = small_table(ds, table)
    key = "campaign_id" if table == "campaigns" else "establishment_id"
    return df.set_index(key)["name"]


def user_locations(ds: Dataset, users: Sequence[Any]) -> pd.DataFrame:
    """The location records of a few users (for maps), fetched from any engine."""
    from adanalytics import to_pandas

    users = [u.item() if hasattr(u, "item") else u for u in users]  # numpy -> Python (Spark literals)
    loc = ds.tables.locations
    if ds.engine.name == "spark":
        from pyspark.sql import functions as F

        frame = loc.where(F.col("user_id").isin(users)) if users else loc.limit(0)
    else:
        frame = loc[loc["user_id"].isin(users)]
    return to_pandas(frame).sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)


def some_users(ds: Dataset, n: int) -> list:
    """``n`` user ids that have location records (any ``n``; cheap on every engine)."""
    loc = ds.tables.locations
    if ds.engine.name == "spark":
        return [r["user_id"] for r in loc.select("user_id").distinct().limit(n).collect()]
    if ds.engine.name == "dask":
        return loc["user_id"].drop_duplicates().head(n, npartitions=-1).tolist()
    return loc["user_id"].drop_duplicates().head(n).tolist()


def replay_positions(ds: Dataset, recs: pd.DataFrame, n_users: int = 4,
                     max_positions: int = 5_000, before: str | pd.Timedelta = "2h",
                     after: str | pd.Timedelta = "15min") -> pd.DataFrame:
    """The positions a live run replays (question 7), in time order.

    For the ``n_users`` users whose suggestions are the clearest (most positions around
    one; :func:`adanalytics.plots.recommendation_episodes`): their positions from
    ``before`` that suggestion to ``after`` it. Without suggestions: the first positions
    of any ``n_users`` users. At most ``max_positions`` (the earliest).
    """
    from adanalytics.plots import recommendation_episodes

    candidates = recs["user_id"].value_counts().index[: 5 * n_users].tolist() if len(recs) else []
    if candidates:
        positions = user_locations(ds, candidates)
        episodes = recommendation_episodes(recs, positions, n=n_users)
        lo, hi = pd.Timedelta(before), pd.Timedelta(after)
        keep = [positions[(positions["user_id"] == ep.user_id)
                          & positions["ts"].between(ep.ts - lo, ep.ts + hi)]
                for ep in episodes.itertuples()]
        positions = pd.concat(keep, ignore_index=True) if keep else positions.iloc[:0]
    else:
        positions = user_locations(ds, some_users(ds, n_users))
    return (positions.sort_values(["ts", "user_id"], kind="stable").head(max_positions)
            .reset_index(drop=True))


# --- display ------------------------------------------------------------------------------
def display_html(text: str) -> None:
    """Display HTML in a notebook (print it elsewhere)."""
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        print(text)
        return
    display(HTML(text))


def show(fig: Figure, dpi: int = 100) -> None:
    """Display a chart as a PNG output (whatever the matplotlib backend)."""
    from IPython.display import Image, display

    from adanalytics.plots import to_png

    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    title = title or next((ax.get_title() for ax in fig.axes if ax.get_title()), "chart")
    display(Image(data=to_png(fig, dpi=dpi), format="png", alt=title))


def table(df: pd.DataFrame, n: int | None = 15, percent: Sequence[str] = (),
          digits: int = 3, caption: str | None = None) -> Any:
    """A result table for display: first ``n`` rows, no index, ``percent`` columns as
    percentages, other floats with ``digits`` significant digits."""
    view = df.head(n) if n else df
    fmt: dict[str, Any] = {}
    for col in view.columns:
        if col in percent:
            fmt[col] = lambda x: "" if pd.isna(x) else f"{x * 100:.2f} %"
        elif pd.api.types.is_float_dtype(view[col]):
            fmt[col] = lambda x, d=digits: "" if pd.isna(x) else f"{x:.{d}g}"
        elif pd.api.types.is_integer_dtype(view[col]):
            fmt[col] = "{:,}".format
    styler = view.style.format(fmt).hide(axis="index")
    if caption:
        more = f" (first {len(view)} of {len(df):,})" if n and len(df) > n else ""
        styler = styler.set_caption(caption + more)
    return styler


@contextlib.contextmanager
def timer(what: str) -> Iterator[None]:
    """Print how long the block took (e.g. an analysis on the cluster)."""
    t0 = time.perf_counter()
    yield
    print(f"{what}: {time.perf_counter() - t0:.2f} s")


# --- headless execution -------------------------------------------------------------------
def execute_notebook(notebook: str | os.PathLike[str], output: str | os.PathLike[str],
                     parameters: Mapping[str, Any] | None = None, *,
                     kernel_name: str | None = None, start_timeout: float = START_TIMEOUT_S,
                     execution_timeout: float = EXECUTION_TIMEOUT_S,
                     cwd: str | os.PathLike[str] | None = None,
                     log_output: bool = False) -> Path:
    """Run a notebook with papermill (parameters injected after its ``parameters`` cell)
    and write the executed copy to ``output``.

    Raises
    ------
    NotebookError
        A cell failed (the executed copy, up to the error, is written all the same) or
        the kernel did not start within ``start_timeout`` seconds.
    """
    import papermill as pm

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_papermill():
            pm.execute_notebook(
                str(notebook), str(out), parameters=dict(parameters or {}),
                kernel_name=kernel_name, start_timeout=int(start_timeout),
                execution_timeout=int(execution_timeout), cwd=str(cwd) if cwd else None,
                progress_bar=False, log_output=log_output,
            )
    except pm.PapermillExecutionError as exc:
        msg = (f"{Path(notebook).name} failed in cell {exc.exec_count}: {exc.ename}: "
               f"{exc.evalue} (executed copy: {out})")
        raise NotebookError(msg) from exc
    except (RuntimeError, TimeoutError) as exc:  # kernel start or a cell timeout
        msg = f"{Path(notebook).name} could not run: {type(exc).__name__}: {exc} (see {out})"
        raise NotebookError(msg) from exc
    return out


@contextlib.contextmanager
def _quiet_papermill() -> Iterator[None]:
    import logging

    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def execute_notebooks(out_dir: str | os.PathLike[str], parameters: Mapping[str, Any] | None = None,
                      which: Sequence[str | int] | None = None, *, engine: str | None = None,
                      addresses: Mapping[str, str] | None = None,
                      source_dir: str | os.PathLike[str] | None = None,
                      on_start: Any = None, **kwargs: Any) -> list[Path]:
    """Run the notebooks (all, or ``which``) into ``out_dir`` with shared ``parameters``.

    ``engine`` overrides every notebook's default engine; ``addresses`` maps an engine to
    its cluster (``{"dask": "tls://m:8786", "spark": "spark://m:7077"}``) and sets each
    notebook's ``address`` by the engine it runs on. An empty ``data_path`` is resolved
    once, so all notebooks use the same generated sample.
    """
    params = dict(parameters or {})
    params["data_path"] = resolve_data_path(params.get("data_path"))
    src = Path(source_dir) if source_dir else notebooks_dir()
    done = []
    for nb in select(which):
        p = dict(params)
        if engine:
            p["engine"] = engine
        run_on = p.get("engine", nb.engine)
        if addresses and addresses.get(run_on):
            p["address"] = addresses[run_on]
        if on_start is not None:
            on_start(nb, run_on)
        done.append(execute_notebook(src / nb.filename, Path(out_dir) / nb.filename, p,
                                     cwd=src, **kwargs))
    return done


def strip_outputs(path: str | os.PathLike[str]) -> bool:
    """Remove outputs, execution counts and run metadata from a notebook file, in place
    (what is committed); returns whether anything changed."""
    import nbformat

    p = Path(path)
    before = p.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("papermill", None)
    buf = io.StringIO()
    nbformat.write(nb, buf)
    after = buf.getvalue()
    if after != before:
        p.write_text(after, encoding="utf-8")
    return after != before


def has_outputs(path: str | os.PathLike[str]) -> list[int]:
    """Indices of the code cells of a notebook file that hold outputs or counts."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return [i for i, c in enumerate(nb.get("cells", []))
            if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))]


# --- question 7: a live run of the real-time path -----------------------------------------
@dataclass
class LiveRun:
    """What :func:`live_run` did: the positions sent, the job's suggestions, the batch
    rule's suggestions on the same positions, and the job's micro-batches."""

    positions: pd.DataFrame  # user_id, lat, lon, ts: what the producer sent
    suggestions: pd.DataFrame  # the streaming job's output
    expected: pd.DataFrame  # the batch rule on the same positions
    history: pd.DataFrame  # one row per micro-batch
    summary: Any  # adanalytics.stream.job.StreamSummary
    out: Path
    redis_url: str
    seconds: float

    @property
    def matches_batch(self) -> bool:
        """Whether the stream emitted exactly the batch rule's rows."""
        from adanalytics.stream.demo import _same_rows

        return _same_rows(self.suggestions, self.expected)

    def counts(self) -> pd.DataFrame:
        """Totals of the run as a one-row table."""
        s = self.summary
        return pd.DataFrame([{
            "positions sent": len(self.positions), "micro-batches": s.batches,
            "positions processed": s.events, "dead letters": s.dead, "late": s.late,
            "suggestions": len(self.suggestions), "batch rule": len(self.expected),
            "same as batch": self.matches_batch, "seconds": round(self.seconds, 1)}])


def live_run(ds: Dataset, positions: pd.DataFrame, *, redis_url: str = "",
             out_dir: str | os.PathLike[str] | None = None, rate: float = 300.0,
             trigger: str = "1s", max_batch: int | None = None, timeout: float = 600.0,
             refresh: float = 1.0, show_progress: bool = True) -> LiveRun:
    """Replay ``positions`` through Redis into the Spark streaming job, showing the counts
    as micro-batches complete, and collect its suggestions.

    Parameters
    ----------
    ds:
        The dataset: its establishments, ads, campaigns and interactions are the job's
        dimensions (as in the batch analysis); its time zone is the job's.
    positions:
        user_id, lat, lon, ts to send (in time order, at ``rate`` per second).
    redis_url:
        The message service; empty = a private ``redis-server`` for this run. Streams
        of a run have their own names, so a shared Redis is never mixed up.
    out_dir:
        Parquet outputs and checkpoint (default: a new temporary directory).
    trigger, max_batch:
        Micro-batch interval, and cap of a micro-batch (default: an eighth of the
        positions, at least 10, so that even a short replay shows the counts grow).
    timeout:
        The run stops when everything sent was processed, or after this many seconds.
    """
    import threading
    import uuid

    from adanalytics.engines.pandas.recommendations import recommend
    from adanalytics.stream.job import JobConfig, StreamJob, trigger_ms
    from adanalytics.stream.producer import positions_frame, produce
    from adanalytics.stream.redis_server import RedisServer
    from adanalytics.stream.sink import read_parquet_dir

    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="adanalytics-live-"))
    tag = uuid.uuid4().hex[:8]
    frame = positions_frame(positions)
    sent_events = pd.DataFrame({
        "user_id": frame["user_id"].to_numpy(), "lat": frame["lat"].to_numpy(),
        "lon": frame["lon"].to_numpy(),
        "ts": pd.to_datetime(frame["ts_ms"].to_numpy(), unit="ms", utc=True)})
    master = None
    if ds.engine.name == "spark":
        with contextlib.suppress(Exception):
            master = ds.engine.spark.sparkContext.master
    server = None if redis_url else RedisServer().start()
    url = redis_url or server.url
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    state: dict[str, Any] = {}
    handle = None
    try:
        cfg = JobConfig(data=ds.source, redis_url=url, out=out / "stream",
                        checkpoint=out / "checkpoint", stream=f"positions-{tag}",
                        suggestions_stream=f"suggestions-{tag}", trigger=trigger, tz=ds.tz,
                        master=master,
                        max_batch=int(max_batch or max(10, -(-len(frame) // 8))))

        def on_batch(r: Any) -> None:  # a Spark callback thread: record only
            records.append({"batch": r.batch_id, "events": r.events, "suggestions": r.suggestions,
                            "dead": r.dead, "late": r.late, "batch_seconds": round(r.seconds, 3),
                            "elapsed_s": round(time.monotonic() - t0, 2)})

        job = StreamJob(cfg, on_batch=on_batch)

        def producer() -> None:
            import redis as redis_py

            client = redis_py.Redis.from_url(url, decode_responses=True)
            try:
                deadline = time.monotonic() + timeout
                while job.query is None and time.monotonic() < deadline and "error" not in state:
                    time.sleep(0.2)
                state["produced"] = produce(frame, client, cfg.stream, rate=rate,
                                            should_stop=lambda: job.stopping)
            except Exception as exc:
                state["producer_error"] = exc
            finally:
                client.close()

        def consumer() -> None:
            try:
                state["summary"] = job.run(stop_when_idle=max(6.0, 5 * trigger_ms(trigger) / 1000),
                                           timeout=timeout)
            except Exception as exc:
                state["error"] = exc

        threads = [threading.Thread(target=consumer, name="adanalytics-live-job", daemon=True),
                   threading.Thread(target=producer, name="adanalytics-live-producer", daemon=True)]
        for th in threads:
            th.start()
        if show_progress:
            handle = _progress_display(None)
        while threads[0].is_alive():
            threads[0].join(refresh)
            if handle is not None:
                _progress_display(handle, records, len(frame), state, t0)
        job.stop()
        threads[1].join(30)
    finally:
        if server is not None:
            server.stop()
    if "error" in state:
        raise state["error"]
    if "producer_error" in state:
        raise state["producer_error"]
    produced = state.get("produced")
    if produced is not None:
        sent_events = sent_events.iloc[:produced.sent]
    got = read_parquet_dir(out / "stream" / "suggestions")
    expected = recommend(sent_events, job.dims.places, job.dims.ranked, tz=job.dims.tz,
                         params=job.dims.params).rows
    history = pd.DataFrame(records, columns=["batch", "events", "suggestions", "dead", "late",
                                             "batch_seconds", "elapsed_s"])
    run = LiveRun(positions=sent_events, suggestions=got, expected=expected, history=history,
                  summary=state["summary"], out=out, redis_url=url,
                  seconds=time.monotonic() - t0)
    if handle is not None:
        _progress_display(handle, records, len(frame), state, t0, final=run)
    return run


def _progress_display(handle: Any, records: list[dict[str, Any]] | None = None, total: int = 0,
                      state: dict[str, Any] | None = None, t0: float = 0.0,
                      final: LiveRun | None = None) -> Any:
    """Create (``handle`` None) or update the live counts display of :func:`live_run`."""
    from IPython.display import HTML, display

    if handle is None:
        return display(HTML("<b>starting redis-server and the Spark streaming job ...</b>"),
                       display_id=True)
    records = list(records or [])
    events = sum(r["events"] for r in records)
    sugg = sum(r["suggestions"] for r in records)
    sent = getattr((state or {}).get("produced"), "sent", None)
    status = "finished" if final is not None else ("running" if records else "starting")
    text = (f"<b>real-time job {status}</b> — {time.monotonic() - t0:.0f} s: "
            f"{len(records)} micro-batches, {events:,} of {total:,} positions processed"
            f"{f' ({sent:,} sent)' if sent is not None else ''}, {sugg:,} suggestions")
    if final is not None:
        text += (f"; the batch rule on the same positions gives {len(final.expected):,} — "
                 f"{'identical' if final.matches_batch else 'DIFFERENT'}")
    handle.update(HTML(text))
    return handle


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adanalytics.notebooks NOTEBOOK...``: strip outputs before a commit."""
    import sys

    paths = list(sys.argv[1:] if argv is None else argv) or [
        str(p) for p in sorted(notebooks_dir().glob("*.ipynb"))]
    for p in paths:
        print(("stripped " if strip_outputs(p) else "clean    ") + p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
