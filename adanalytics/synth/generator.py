"""``generate()``: write a synthetic dataset (SPEC §2) and the truth planted in it.

Layout of the output directory::

    campaigns.parquet  ads.parquet  establishments.parquet
    interactions/month=YYYY-MM/part-NNNNN.parquet
    locations/month=YYYY-MM/part-NNNNN.parquet
    truth.json

Users are generated in chunks (one file per month and chunk), two at a time on a
thread pool - numpy and Parquet release the GIL - so any scale streams to disk in
bounded memory. Every chunk has its own random stream, so the bytes written depend on
the seed and scale only, never on timing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import zoneinfo
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adanalytics.semantics import ATTRIBUTION_WINDOW, PERIOD_NAMES, VISIT_RADIUS_M
from adanalytics.synth import catalog
from adanalytics.synth.approach import approach_users
from adanalytics.synth.catalog import CATEGORIES, PERSONA_NAMES
from adanalytics.synth.chunk import (
    CLICK_DELAY_S,
    P_TRIP_AFTER_CLICK,
    P_TRIP_AFTER_VIEW,
    STREAM_CAMPAIGNS,
    STREAM_CITY,
    TRIP_DELAY_S,
    TRIP_DISTANCE_SCALE_M,
    ChunkResult,
    World,
    chunk_summary,
    generate_chunk,
    month_order,
)
from adanalytics.synth.city import build_campaigns, build_city, build_establishments, id_strings
from adanalytics.synth.people import VIEWS_PER_RECORD
from adanalytics.synth.timeline import Timeline

#: Location records of each preset scale.
SCALES: dict[str, int] = {
    "tiny": 10_000,
    "small": 1_000_000,
    "medium": 10_000_000,
    "large": 100_000_000,
}

TABLES = ("campaigns", "ads", "establishments", "interactions", "locations")
#: Records per chunk: about 1/8 of the data, at least 250k (fewer, larger files), at
#: most 2M (bounded memory: a chunk in flight takes a few hundred MB).
MIN_CHUNK, MAX_CHUNK = 250_000, 2_000_000
#: Chunks generated at the same time.
WORKERS = 2
#: No compression: GPS floats hardly compress (snappy saves ~4 % and costs ~40 % more
#: write time); ids and actions are dictionary-encoded, which is where the savings are.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "none",
    "use_dictionary": ["user_id", "ad_id", "action"],
    "write_statistics": True,
}
#: The small dimension tables compress well (names, categories).
PARQUET_OPTIONS_DIM: dict[str, Any] = {"compression": "snappy"}
TRUTH_VERSION = 1


@dataclass
class GenerateResult:
    """What :func:`generate` wrote.

    Attributes
    ----------
    out:
        The dataset directory.
    rows:
        Rows written per table.
    seconds:
        Wall time of the generation.
    truth:
        The planted parameters (also in ``out / "truth.json"``).
    """

    out: Path
    rows: dict[str, int]
    seconds: float
    truth: dict[str, Any] = field(repr=False)

    @property
    def records_per_second(self) -> float:
        """Location records generated per second of wall time."""
        return self.rows["locations"] / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class Sizes:
    """How big every part of the dataset is, derived from the location record count."""

    records: int
    establishments: int
    campaigns: int
    users: int
    approach_users: int
    chunks: int

    @classmethod
    def of(cls, records: int) -> Sizes:
        r = records / 1e4
        chunk = min(max(records // 8, MIN_CHUNK), MAX_CHUNK)
        return cls(
            records=records,
            establishments=max(20, round(200 * r**0.6)),
            campaigns=max(12, round(20 * r**0.4)),
            users=max(5, min(records // 20 + 1, round(50 * r**0.77))),
            approach_users=0 if records < 5_000 else (5 if records < 1_000_000 else 20),
            chunks=max(1, math.ceil(records / chunk)),
        )


def resolve_scale(scale: str | int) -> int:
    """Number of location records of a preset name or an integer (or digit string)."""
    if isinstance(scale, str):
        key = scale.strip().lower().replace("_", "")
        if key in SCALES:
            return SCALES[key]
        try:
            number = float(key)  # also "1e6"
        except ValueError:
            msg = f"scale must be one of {', '.join(SCALES)} or a number of location records, got {scale!r}"
            raise ValueError(msg) from None
        if not number.is_integer():
            msg = f"scale must be a whole number of location records, got {scale!r}"
            raise ValueError(msg)
        scale = int(number)
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        msg = f"scale must be one of {', '.join(SCALES)} or a positive number of location records, got {scale!r}"
        raise ValueError(msg)
    return int(scale)


def _check_args(seed: int, center: tuple[float, float], tz: str, months: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        msg = f"seed must be a non-negative integer, got {seed!r}"
        raise ValueError(msg)
    lat, lon = center
    if not (-80.0 <= float(lat) <= 80.0 and -180.0 <= float(lon) <= 180.0):
        msg = f"center must be (lat, lon) with |lat| <= 80 and |lon| <= 180, got {center!r}"
        raise ValueError(msg)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"tz must be an IANA time zone such as 'America/Recife', got {tz!r}"
        raise ValueError(msg) from exc
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        msg = f"months must be a positive integer, got {months!r}"
        raise ValueError(msg)


def generate(
    out: str | os.PathLike[str],
    scale: str | int = "tiny",
    seed: int = 0,
    center: tuple[float, float] = (-8.0476, -34.8770),
    tz: str = "America/Recife",
    start: str = "2024-01-01",
    months: int = 3,
    progress: bool = False,
) -> GenerateResult:
    """Write a realistic synthetic dataset with known planted truth.

    Parameters
    ----------
    out:
        Output directory (created; the five tables and ``truth.json`` in it are replaced).
    scale:
        ``"tiny"``, ``"small"``, ``"medium"``, ``"large"`` (1e4 ... 1e8 location
        records, see :data:`SCALES`) or an exact number of location records.
    seed:
        Non-negative seed; the same seed and arguments give byte-identical tables.
    center:
        (lat, lon) of the city centre.
    tz:
        IANA time zone of the city: the local time of every rhythm and bucket.
    start:
        First local date of the period.
    months:
        Length of the period in calendar months.
    progress:
        Show a progress bar (rich).

    Returns
    -------
    GenerateResult
        Output path, rows per table, wall time and the planted truth.
    """
    t_start = time.perf_counter()
    records = resolve_scale(scale)
    _check_args(seed, center, tz, months)
    seed = int(seed)
    out_path = Path(out)
    timeline = Timeline.build(start, int(months), tz)
    sizes = Sizes.of(records)

    rng_city = np.random.default_rng([seed, STREAM_CITY])
    city = build_city(rng_city, center[0], center[1], sizes.establishments)
    est = build_establishments(rng_city, city, sizes.establishments)
    camp = build_campaigns(
        np.random.default_rng([seed, STREAM_CAMPAIGNS]), sizes.campaigns, est, timeline
    )
    world = World(seed=seed, timeline=timeline, city=city, est=est, camp=camp)

    _prepare(out_path)
    dims = {
        "campaigns": camp.campaigns_table(timeline),
        "ads": camp.ads_table(est),
        "establishments": est.table(),
    }
    for name, table in dims.items():
        pq.write_table(table, out_path / f"{name}.parquet", **PARQUET_OPTIONS_DIM)

    demo = approach_users(world, sizes.approach_users)
    if len(demo.user) > records // 5:  # never let the demo walkers crowd out the city
        demo = approach_users(world, 0)
    main_records = records - len(demo.user)
    user_width = max(7, len(str(sizes.users + sizes.approach_users)))

    ad_ids = pa.array(camp.ad_ids, pa.string())
    with _Progress(records, progress) as bar:
        summaries, users_truth = _run_chunks(
            world,
            out_path,
            sizes.chunks,
            _split(sizes.users, sizes.chunks),
            main_records,
            user_width,
            ad_ids,
            bar,
        )
        demo_truth, demo_summary = _write_demo(
            world, out_path, demo, sizes, user_width, sizes.chunks
        )
        bar.advance(demo_summary["locations"])

    rows = {name: table.num_rows for name, table in dims.items()}
    rows["interactions"] = sum(s["interactions"] for s in summaries)
    if rows["interactions"] == 0:  # a directory without files has no schema: write one
        _write_month_files(
            out_path,
            "interactions",
            timeline.months[:1],
            np.array([0, 0]),
            0,
            _interaction_columns(
                np.empty(0, "S1"), *(np.empty(0, np.int64) for _ in range(4)), ad_ids
            ),
            allow_empty=True,
        )
    rows["locations"] = sum(s["locations"] for s in summaries) + demo_summary["locations"]
    truth = _truth(
        world,
        records=records,
        scale=scale if isinstance(scale, str) else int(scale),
        center=center,
        months=int(months),
        sizes=sizes,
        rows=rows,
        summaries=summaries,
        users_truth=users_truth,
        approach=demo_truth,
    )
    _write_truth(out_path / "truth.json", truth)
    return GenerateResult(
        out=out_path, rows=rows, seconds=time.perf_counter() - t_start, truth=truth
    )


def _run_chunks(
    world: World,
    out: Path,
    n_chunks: int,
    users_per_chunk: np.ndarray,
    records: int,
    user_width: int,
    ad_ids: pa.Array,
    bar: _Progress,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate and write every chunk, ``WORKERS`` at a time, collecting their truth in order.

    At most ``WORKERS + 1`` chunks are in flight, which bounds memory at any scale.
    """
    records_per_chunk = _split_by(records, users_per_chunk)
    first_users = np.concatenate([[0], np.cumsum(users_per_chunk)[:-1]])
    summaries: list[dict[str, Any]] = []
    users_truth: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="synth") as pool:
        pending: deque[Future[tuple[ChunkResult, dict[str, Any]]]] = deque()
        nxt = 0
        while pending or nxt < n_chunks:
            while nxt < n_chunks and len(pending) < WORKERS + 1:
                pending.append(
                    pool.submit(
                        _chunk_task,
                        world,
                        out,
                        nxt,
                        int(first_users[nxt]),
                        int(users_per_chunk[nxt]),
                        int(records_per_chunk[nxt]),
                        user_width,
                        ad_ids,
                    )
                )
                nxt += 1
            result, summary = pending.popleft().result()
            summaries.append(summary)
            users_truth.update(_users_truth(result, user_width))
            bar.advance(summary["locations"])
    return summaries, users_truth


def _prepare(out: Path) -> None:
    """Create ``out`` and remove any earlier copy of the tables (in any layout)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        for suffix in ("", ".parquet", ".csv", ".csv.gz"):
            p = out / f"{name}{suffix}"
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    for name in ("interactions", "locations"):
        (out / name).mkdir()


def _split(total: int, parts: int) -> np.ndarray:
    """``total`` split into ``parts`` near-equal integers."""
    base = np.full(parts, total // parts, dtype=np.int64)
    base[: total % parts] += 1
    return base


def _split_by(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split proportionally to ``weights`` (integers summing to ``total``)."""
    w = np.asarray(weights, dtype=np.float64)
    share = total * w / w.sum()
    out = np.floor(share).astype(np.int64)
    rest = total - int(out.sum())
    out[np.argsort(out - share, kind="stable")[:rest]] += 1
    return out


def _user_ids(first: int, n: int, width: int) -> np.ndarray:
    """Ids of users ``first + 1 .. first + n`` as fixed-width bytes (all ids are equally long)."""
    return id_strings("u", first, n, width).astype(f"S{width + 1}")


def _gather_ids(ids: np.ndarray, idx: np.ndarray) -> pa.Array:
    """``ids[idx]`` as an Arrow string array, built straight from buffers (no Python objects)."""
    width = ids.dtype.itemsize
    data = np.ascontiguousarray(ids[idx]).view(np.uint8)
    offsets = np.arange(0, (len(idx) + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(len(idx), pa.py_buffer(offsets), pa.py_buffer(data))


def _write_month_files(
    out: Path,
    table: str,
    months: tuple[str, ...],
    month_ptr: np.ndarray,
    part: int,
    columns: dict[str, pa.Array],
    allow_empty: bool = False,
) -> None:
    """One file per month; rows of month m are the slice [month_ptr[m], month_ptr[m + 1])."""
    data = pa.table(columns)
    for m, label in enumerate(months):
        lo, hi = int(month_ptr[m]), int(month_ptr[m + 1])
        if hi <= lo and not allow_empty:
            continue
        folder = out / table / f"month={label}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            data.slice(lo, hi - lo), folder / f"part-{part:05d}.parquet", **PARQUET_OPTIONS
        )


_TS = pa.timestamp("us", tz="UTC")


def _ts_array(ts_us: np.ndarray) -> pa.Array:
    return pa.array(ts_us, pa.int64()).view(_TS)


def _write_locations(
    out: Path,
    tl: Timeline,
    part: int,
    user_ids: np.ndarray,
    user: np.ndarray,
    ts: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    month_ptr: np.ndarray,
) -> None:
    _write_month_files(
        out,
        "locations",
        tl.months,
        month_ptr,
        part,
        {
            "user_id": _gather_ids(user_ids, user),
            "lat": pa.array(lat, pa.float64()),
            "lon": pa.array(lon, pa.float64()),
            "ts": _ts_array(ts),
        },
    )


_ACTIONS = pa.array(["view", "click"], pa.string())


def _interaction_columns(
    user_ids: np.ndarray,
    user: np.ndarray,
    ad: np.ndarray,
    click: np.ndarray,
    ts: np.ndarray,
    ad_ids: pa.Array,
) -> dict[str, pa.Array]:
    return {
        "user_id": _gather_ids(user_ids, user),
        "ad_id": ad_ids.take(pa.array(ad, pa.int64())),
        "action": _ACTIONS.take(pa.array(np.asarray(click, dtype=np.int8))),
        "ts": _ts_array(np.asarray(ts, dtype=np.int64)),
    }


def _chunk_task(
    world: World,
    out: Path,
    index: int,
    first_user: int,
    n_users: int,
    records: int,
    user_width: int,
    ad_ids: pa.Array,
) -> tuple[ChunkResult, dict[str, Any]]:
    result = generate_chunk(world, index, first_user, n_users, records)
    tl = world.timeline
    user_ids = _user_ids(first_user, n_users, user_width)
    _write_locations(
        out,
        tl,
        index,
        user_ids,
        result.loc_user,
        result.loc_ts_us,
        result.loc_lat,
        result.loc_lon,
        result.loc_month_ptr,
    )
    _write_month_files(
        out,
        "interactions",
        tl.months,
        result.int_month_ptr,
        index,
        _interaction_columns(
            user_ids, result.int_user, result.int_ad, result.int_click, result.int_ts_us, ad_ids
        ),
    )
    summary = chunk_summary(result)
    # free the big arrays early: only the small per-user truth travels back
    for name in (
        "loc_user",
        "loc_ts_us",
        "loc_lat",
        "loc_lon",
        "int_user",
        "int_ts_us",
        "int_ad",
        "int_click",
    ):
        setattr(result, name, np.empty(0))
    return result, summary


def _write_demo(
    world: World, out: Path, demo: Any, sizes: Sizes, user_width: int, part: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tl, est, camp = world.timeline, world.est, world.camp
    if len(demo.user) == 0:
        return [], {"locations": 0}
    ts = tl.to_utc_us(demo.t)
    n_demo = int(demo.user.max()) + 1
    order, ptr = month_order(tl, demo.user, ts, n_demo)
    lat, lon = world.city.to_latlon(demo.x[order], demo.y[order])
    user_ids = _user_ids(sizes.users, n_demo, user_width)
    _write_locations(out, tl, part, user_ids, demo.user[order], ts[order], lat, lon, ptr)
    ids = [i.decode() for i in user_ids]
    walks = [
        {
            "user_id": ids[w["user"]],
            "establishment_id": str(est.ids[w["establishment"]]),
            "ad_id": str(camp.ad_ids[w["ad"]]),
            "start_ts": _iso(tl, w["start_local_s"]),
            "arrival_ts": _iso(tl, w["arrival_local_s"]),
            "start_distance_m": w["start_distance_m"],
        }
        for w in demo.walks
    ]
    return walks, {"locations": len(demo.user)}


def _iso(tl: Timeline, t_local_s: float) -> str:
    us = int(tl.to_utc_us(np.array([t_local_s]))[0])
    return np.datetime_as_string(np.datetime64(us, "us"), unit="ms") + "Z"


def _users_truth(result: ChunkResult, width: int) -> dict[str, Any]:
    cats = np.asarray(CATEGORIES, dtype=object)
    ids = id_strings("u", result.first_user, result.n_users, width)
    period = cats[result.preferred_period]
    weekday = cats[result.preferred_weekday]
    return {
        str(ids[i]): {
            "persona": PERSONA_NAMES[result.persona[i]],
            "preferred_by_period": dict(zip(PERIOD_NAMES, period[i].tolist(), strict=True)),
            "preferred_by_weekday": weekday[i].tolist(),
        }
        for i in range(result.n_users)
    }


def _truth(
    world: World,
    *,
    records: int,
    scale: str | int,
    center: tuple[float, float],
    months: int,
    sizes: Sizes,
    rows: dict[str, int],
    summaries: list[dict[str, Any]],
    users_truth: dict[str, Any],
    approach: list[dict[str, Any]],
) -> dict[str, Any]:
    tl, camp = world.timeline, world.camp

    def total(key: str) -> int:
        return int(sum(s[key] for s in summaries))

    clicks = total("clicks")
    personas = {
        name: {
            "share": float(catalog.PERSONA_SHARE[p]),
            "by_period": {
                period: dict(
                    zip(
                        CATEGORIES,
                        np.round(_norm(catalog.PERSONA_PERIOD_WEIGHTS[p, k]), 4).tolist(),
                        strict=True,
                    )
                )
                for k, period in enumerate(PERIOD_NAMES)
            },
            "by_weekday": [
                dict(
                    zip(
                        CATEGORIES,
                        np.round(_norm(catalog.PERSONA_WEEKDAY_WEIGHTS[p, d]), 4).tolist(),
                        strict=True,
                    )
                )
                for d in range(7)
            ],
        }
        for p, name in enumerate(PERSONA_NAMES)
    }
    return {
        "generator": "adanalytics.synth",
        "version": TRUTH_VERSION,
        "seed": world.seed,
        "scale": scale,
        "records": records,
        "center": [float(center[0]), float(center[1])],
        "tz": tl.tz,
        "start": str(tl.start.date()),
        "end_exclusive": str(tl.end.date()),
        "months": months,
        "month_labels": list(tl.months),
        "counts": {
            **rows,
            "views": rows["interactions"] - clicks,
            "clicks": clicks,
            "users": sizes.users + len({w["user_id"] for w in approach}),
            "approach_users": len({w["user_id"] for w in approach}),
            "chunks": sizes.chunks,
            "spontaneous_trips": total("spontaneous_trips"),
            "dwell_records": total("dwell_records"),
        },
        "categories": list(CATEGORIES),
        "campaign_ctr": {str(i): float(c) for i, c in zip(camp.ids, camp.ctr, strict=True)},
        "campaign_category": {
            str(i): CATEGORIES[c] for i, c in zip(camp.ids, camp.category, strict=True)
        },
        "interactions": {
            "views_per_record": VIEWS_PER_RECORD,
            "click_delay_s": list(CLICK_DELAY_S),
            "description": (
                "each location record comes with an ad view with a per-user probability "
                "(mean views_per_record); the category follows the user's period preference "
                "times the category's hourly rhythm; the ad is an active ad of that category; "
                "a view is clicked with its campaign's planted CTR (a click row follows the view)"
            ),
        },
        "visit_lift": {
            "window_hours": ATTRIBUTION_WINDOW / np.timedelta64(1, "h"),
            "radius_m": VISIT_RADIUS_M,
            "p_trip_after_view": P_TRIP_AFTER_VIEW,
            "p_trip_after_click": P_TRIP_AFTER_CLICK,
            "trip_distance_scale_m": TRIP_DISTANCE_SCALE_M,
            "departure_delay_hours": [TRIP_DELAY_S[0] / 3600, TRIP_DELAY_S[1] / 3600],
            "ad_trips_planned": total("ad_trips_planned"),
            "ad_trips": total("ad_trips"),
            "ad_trip_records": total("ad_trip_records"),
            "ad_trip_dwell_records": total("ad_trip_dwell_records"),
            "description": (
                "after an interaction with an ad of establishment E the user leaves for E with "
                "probability p_trip_after_view (p_trip_after_click for a clicked view) times "
                "exp(-distance to E / trip_distance_scale_m), after a uniform delay "
                "(departure_delay_hours), and dwells there (pings within metres of E); trips that would "
                "overlap another trip of the user are dropped (ad_trips of ad_trips_planned kept)"
            ),
        },
        "category_rhythm": {
            c: np.round(catalog.CATEGORY_RHYTHM[i], 5).tolist() for i, c in enumerate(CATEGORIES)
        },
        "personas": personas,
        "users": users_truth,
        "approach_walks": approach,
        "hotspots": [
            {
                "lat": float(lat),
                "lon": float(lon),
                "sigma_m": round(float(h[2]), 1),
                "weight": round(float(h[3]), 3),
            }
            for h, lat, lon in zip(
                world.city.hotspots,
                *world.city.to_latlon(world.city.hotspots[:, 0], world.city.hotspots[:, 1]),
                strict=True,
            )
        ],
    }


def _write_truth(path: Path, truth: dict[str, Any]) -> None:
    # one top-level key per line: readable with a pager, and json's fast C encoder
    # (indent= would fall back to the slow pure-Python one on tens of thousands of users)
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in truth.items()]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{\n" + ",\n".join(lines) + "\n}\n")


def _norm(w: np.ndarray) -> np.ndarray:
    return w / w.sum()


class _Progress:
    """A rich progress bar over location records (a no-op when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]generating[/] location records"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("generate", total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
