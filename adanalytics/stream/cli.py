"""``adanalytics stream produce|run|map``: the real-time path from the command line.

Wired into :mod:`adanalytics.cli` by two calls: :func:`add_stream_parser` registers the
``stream`` command and its sub-commands on the main parser's sub-parsers, and
:func:`run_stream_command` runs a parsed ``stream`` command (returns the exit code).
Errors meant for the user are :class:`~adanalytics.errors.AdAnalyticsError` or
``ValueError`` with a message (the main CLI prints them without a traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adanalytics.errors import AdAnalyticsError

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_REDIS = "redis://localhost:6379/0"
EXIT_OK, EXIT_ERROR = 0, 1


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not x > 0:
        msg = f"must be a positive number, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return x


def _positive_int(value: str) -> int:
    try:
        x = int(float(value))
    except ValueError:
        x = -1
    if x <= 0:
        msg = f"must be a positive integer, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return x


def _seconds(value: str) -> float:
    """``30``, ``30s``, ``2min``, ``1h`` -> seconds."""
    from adanalytics.semantics import to_timedelta

    try:
        return to_timedelta(float(value) if value.replace(".", "", 1).isdigit() else value,
                            "duration").total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_stream_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``stream produce|run|map`` on the CLI's sub-parsers; returns the parser."""
    from adanalytics.semantics import DEFAULT_TZ

    s = subparsers.add_parser(
        "stream", help="real-time recommendations: Redis producer, Spark streaming job, maps",
        description="Question 7 in real time. 'produce' replays a dataset's locations into a "
        "Redis stream; 'run' is the Spark Structured Streaming job that turns positions into "
        "ad suggestions (Redis stream + Parquet, exactly once); 'map' draws the users whose "
        "approach produced a suggestion.")
    sub = s.add_subparsers(dest="stream_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("produce", help="replay a dataset's locations into a Redis stream",
                       description="Append the locations of a dataset to a Redis stream in time "
                       "order, as entries user_id, lat, lon, ts (epoch ms): at a fixed rate, "
                       "at a speed-up of event time, or as fast as possible.")
    p.add_argument("--data", required=True, help="dataset directory (its locations are replayed)")
    p.add_argument("--redis", default=DEFAULT_REDIS, metavar="URL",
                   help="Redis URL (default %(default)s)")
    p.add_argument("--stream", default="positions", help="stream key (default %(default)s)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive_float, metavar="EVENTS_PER_S",
                      help="events per second (default: as fast as possible)")
    pace.add_argument("--speedup", type=_positive_float, metavar="X",
                      help="replay event time X times faster than real time")
    p.add_argument("--limit", type=_positive_int, default=None, help="send at most N positions")
    p.add_argument("--maxlen", type=_positive_int, default=None,
                   help="trim the stream to about N entries (a job further behind loses data)")
    p.add_argument("--tz", default=DEFAULT_TZ, help="dataset time zone (default %(default)s)")

    r = sub.add_parser("run", help="run the streaming job (positions -> suggestions)",
                       description="Spark Structured Streaming: read positions from a Redis "
                       "stream (offsets checkpointed), keep per-user state, apply the approach "
                       "rule of SPEC 3.7 and write suggestions to the Redis stream "
                       "'suggestions' and to Parquet under --out, exactly once. Malformed "
                       "positions go to a dead-letter stream with the reason.")
    r.add_argument("--data", required=True,
                   help="dataset directory: establishments, ads, campaigns, interactions")
    r.add_argument("--redis", default=DEFAULT_REDIS, metavar="URL",
                   help="Redis URL (default %(default)s)")
    r.add_argument("--stream", default="positions", help="positions stream (default %(default)s)")
    r.add_argument("--out", required=True, help="output directory (Parquet per micro-batch)")
    r.add_argument("--checkpoint", required=True,
                   help="checkpoint directory (restart with the same one to resume exactly once)")
    r.add_argument("--trigger", default="1s",
                   help="micro-batch interval, e.g. 1s, 500ms, 0 = back to back (default %(default)s)")
    r.add_argument("--stop-when-idle", type=_seconds, default=None, metavar="SECONDS",
                   help="stop once no position arrived for this long and all are processed")
    r.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="stop after this long in any case")
    r.add_argument("--suggestions-stream", default="suggestions",
                   help="output stream (default %(default)s)")
    r.add_argument("--dead-stream", default=None,
                   help="dead-letter stream (default: <stream>:dead)")
    r.add_argument("--starting-id", default="earliest",
                   help="where a new checkpoint starts: earliest (default), latest or an entry id")
    r.add_argument("--max-batch", type=_positive_int, default=100_000,
                   help="at most N positions per micro-batch (default %(default)s)")
    r.add_argument("--key", choices=("bucket", "user"), default="bucket",
                   help="state grouping: hash buckets of users (default, fast) or one group "
                   "per user")
    r.add_argument("--buckets", type=_positive_int, default=None,
                   help="user buckets (fixed by a checkpoint's first run; default: one per "
                   "state partition; more only for hundreds of thousands of users)")
    r.add_argument("--partitions", type=_positive_int, default=1,
                   help="state partitions (fixed by a checkpoint's first run; default "
                   "%(default)s: each costs a Python task per micro-batch, so raise it only "
                   "when the rule itself, not Spark's per-batch cost, fills a core)")
    r.add_argument("--state-ttl", default="24h",
                   help="forget users silent for this long (default %(default)s)")
    r.add_argument("--no-fail-on-data-loss", action="store_true",
                   help="go on (with a warning) when positions the checkpoint needs were trimmed")
    r.add_argument("--master", default=None, metavar="URL",
                   help="Spark master (default: $SPARK_MASTER, else embedded local[2])")
    r.add_argument("--tz", default=DEFAULT_TZ, help="dataset time zone (default %(default)s)")

    m = sub.add_parser("map", help="maps of users whose approach produced a suggestion",
                       description="Interactive HTML (Bokeh) and static PNG maps: trajectory, "
                       "nearby establishments and where each suggestion fired, for the users "
                       "with the most suggestions (or --users).")
    m.add_argument("--data", required=True, help="dataset directory (establishments; and the "
                   "trajectories, unless --redis is given)")
    m.add_argument("--results", default=None,
                   help="the job's --out directory (default: read the suggestions stream)")
    m.add_argument("--redis", default=None, metavar="URL",
                   help="read trajectories (and suggestions) from Redis instead")
    m.add_argument("--stream", default="positions", help="positions stream (default %(default)s)")
    m.add_argument("--suggestions-stream", default="suggestions",
                   help="suggestions stream (default %(default)s)")
    m.add_argument("--users", default=None, help="comma-separated user ids to map")
    m.add_argument("--max-users", type=_positive_int, default=6,
                   help="map the N users with most suggestions (default %(default)s)")
    m.add_argument("--out", default=None, help="output directory (default RESULTS/maps)")
    m.add_argument("--tz", default=DEFAULT_TZ, help="dataset time zone (default %(default)s)")
    return s


def run_stream_command(args: argparse.Namespace) -> int:
    """Run a parsed ``adanalytics stream ...`` command; returns the exit code."""
    from rich.console import Console

    con = Console(highlight=False)
    handlers = {"produce": _produce, "run": _run, "map": _map}
    try:
        return handlers[args.stream_command](args, con)
    except Exception as exc:
        _reraise_friendly(exc, args)
        raise


def _reraise_friendly(exc: Exception, args: argparse.Namespace) -> None:
    """Turn a Redis connection failure into an error naming the URL."""
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return
    if isinstance(exc, redis.exceptions.ConnectionError):
        url = getattr(args, "redis", None) or DEFAULT_REDIS
        msg = (f"cannot reach Redis at {url}: {exc}. Start redis-server (./bootstrap.sh installs "
               f"it) or pass --redis URL")
        raise AdAnalyticsError(msg) from exc


def _produce(args: argparse.Namespace, con: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adanalytics.stream.producer import produce_dataset

    pace = (f"{args.rate:,.0f} events/s" if args.rate else
            f"{args.speedup:g}x real time" if args.speedup else "as fast as possible")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=con,
                  transient=False) as prog:
        task = prog.add_task(f"producing to {args.stream} ({pace})", total=None, rate="")
        t0 = [0.0]

        def start(n: int) -> None:
            import time

            t0[0] = time.monotonic()
            prog.update(task, total=n)

        def progress(sent: int) -> None:
            import time

            dt = time.monotonic() - t0[0]
            prog.update(task, completed=sent, rate=f"{sent / dt:,.0f}/s" if dt > 0 else "")

        rep = produce_dataset(args.data, args.redis, args.stream, rate=args.rate,
                              speedup=args.speedup, limit=args.limit, maxlen=args.maxlen,
                              tz=args.tz, on_start=start, on_progress=progress)
    con.print(f"[green]sent[/] {rep.sent:,} positions to {args.redis} stream {args.stream!r} "
              f"in {rep.seconds:.1f} s ({rep.rate:,.0f}/s); ids {rep.first_id} .. {rep.last_id}")
    return EXIT_OK


def _run(args: argparse.Namespace, con: Console) -> int:
    from adanalytics.stream.job import JobConfig, StreamJob
    from adanalytics.stream.sink import BatchReport

    cfg = JobConfig(
        data=args.data, redis_url=args.redis, stream=args.stream, out=Path(args.out),
        checkpoint=Path(args.checkpoint), suggestions_stream=args.suggestions_stream,
        dead_stream=args.dead_stream, trigger=args.trigger, key=args.key,
        buckets=args.buckets, partitions=args.partitions, state_ttl=args.state_ttl,
        max_batch=args.max_batch, starting_id=args.starting_id,
        fail_on_data_loss=not args.no_fail_on_data_loss, tz=args.tz, master=args.master)
    _check_redis(args.redis)

    def show(b: BatchReport) -> None:
        con.print(f"batch {b.batch_id}: {b.events:,} positions, {b.suggestions:,} suggestions, "
                  f"{b.dead:,} dead, {b.late:,} late ({b.seconds:.2f} s)"
                  + ("" if b.redis_written else " [dim](replayed: Redis already had it)[/]"))

    with con.status("loading the dataset and starting Spark ..."):
        job = StreamJob(cfg, on_batch=show)
    con.print(f"streaming {args.redis} {args.stream!r} -> {cfg.suggestions_stream!r} and "
              f"{cfg.out}/suggestions (dead letters: {cfg.dead_stream!r}; counters: "
              f"{cfg.metrics_key!r}); Ctrl-C stops")
    summary = job.run(stop_when_idle=args.stop_when_idle, timeout=args.timeout,
                      handle_signals=True)
    con.print(f"[green]stopped[/] ({summary.stopped}) after {summary.seconds:.1f} s: "
              f"{summary.batches} batches, {summary.events:,} positions, "
              f"{summary.suggestions:,} suggestions, {summary.dead:,} dead letters, "
              f"{summary.late:,} late events")
    return EXIT_OK


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


def _map(args: argparse.Namespace, con: Console) -> int:
    import pandas as pd

    import adanalytics as aa
    from adanalytics.stream import maps
    from adanalytics.stream.sink import read_parquet_dir

    if args.results is None and args.redis is None:
        msg = "give --results (the job's --out directory) or --redis (read the streams)"
        raise ValueError(msg)
    users = [u.strip() for u in args.users.split(",") if u.strip()] if args.users else None
    with con.status("reading suggestions and trajectories ..."):
        client = None
        if args.redis:
            import redis

            client = redis.Redis.from_url(args.redis, decode_responses=True)
        if args.results:
            sugg = read_parquet_dir(Path(args.results) / "suggestions")
            if sugg.empty:
                sugg = pd.DataFrame(columns=["user_id", "establishment_id", "ad_id", "ts", "distance_m"])
        else:
            sugg = maps.suggestions_from_redis(client, args.suggestions_stream)
        chosen = maps.choose_users(sugg, users, args.max_users)
        if client is not None:
            positions = maps.positions_from_redis(client, args.stream, chosen)
            ds = aa.open_dataset(_dims_only(args.data), engine="pandas", tz=args.tz)
        else:
            ds = aa.open_dataset(args.data, engine="pandas", tz=args.tz)
            positions = ds.tables.locations
    if not chosen:
        con.print("[yellow]no suggestion to map[/] (and no --users given)")
        return EXIT_OK
    out = Path(args.out) if args.out else Path(args.results or ".") / "maps"
    paths = maps.make_maps(positions, sugg, ds.tables.establishments, out, users=chosen,
                           max_users=args.max_users)
    con.print(f"[green]wrote[/] {paths.html} and {paths.png} ({len(paths.users)} users: "
              f"{', '.join(map(str, paths.users))})")
    return EXIT_OK


def _dims_only(data: str) -> dict[str, Any]:
    """The tables of a dataset with an empty locations table (trajectories come from Redis)."""
    import pandas as pd

    from adanalytics import io, schema

    sources = io.locate_tables(data)
    tables: dict[str, Any] = {t: io.read_pandas(src) for t, src in sources.items() if t != "locations"}
    tables["locations"] = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.columns("locations")})
    return tables


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m adanalytics.stream.cli produce ...``), used by
    tests and benchmarks before the main CLI has the ``stream`` command."""
    parser = argparse.ArgumentParser(prog="adanalytics")
    sub = parser.add_subparsers(dest="command", required=True)
    add_stream_parser(sub)
    args = parser.parse_args(["stream", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_stream_command(args)
    except (AdAnalyticsError, ValueError, FileNotFoundError) as exc:
        print(f"adanalytics stream {args.stream_command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
