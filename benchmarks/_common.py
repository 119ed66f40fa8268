"""Shared benchmark helpers: presets, cached datasets, timing and peak memory.

Datasets are generated once per (scale, seed) and cached as Parquet under
``benchmarks/.data/`` (git-ignored: the directory carries its own ``.gitignore``), or
read from ``--data DIR``. They come from :func:`adanalytics.synth.generate` when it is
available, else from :func:`generate_city`, an equivalent stand-alone generator (a city
around Recife, establishments clustered in commercial areas, ~10 % of the location
records within 50 m of an establishment, interactions that precede some visits).

Timings never include reading files: every benchmark loads its tables into memory first.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / ".data"

#: Location records per preset (SPEC §4: tiny / small / medium / large).
SCALES: dict[str, int] = {
    "tiny": 10_000,
    "small": 1_000_000,
    "medium": 10_000_000,
    "large": 100_000_000,
}

#: Recife (Marco Zero) - the default city centre.
RECIFE = (-8.0631, -34.8711)
_M_PER_DEG = 6_371_008.8 * np.pi / 180.0


def records_of(scale: str) -> int:
    """Number of location records of a preset name or an integer string."""
    if scale in SCALES:
        return SCALES[scale]
    try:
        n = int(float(scale))
    except ValueError:
        msg = f"scale must be one of {', '.join(SCALES)} or a number of records, got {scale!r}"
        raise SystemExit(msg) from None
    if n <= 0:
        msg = f"scale must be positive, got {scale!r}"
        raise SystemExit(msg)
    return n


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark shares: --scale, --seed, --data, --source, --repeat."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scale", default="medium",
                   help="tiny|small|medium|large (1e4/1e6/1e7/1e8 location records) or a "
                        "number of records (default: medium)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument("--data", default=None,
                   help="use this dataset directory instead of generating/caching one")
    p.add_argument("--source", choices=("auto", "synth", "builtin"), default="auto",
                   help="generator: adanalytics.synth (auto: when available) or the "
                        "benchmark's own stand-alone city generator")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed repetitions of the fast methods; the median is reported")
    return p


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def _synth_generate() -> Callable[..., Any] | None:
    try:
        from adanalytics.synth import generate
    except ImportError:
        return None
    return generate


def dataset_dir(args: argparse.Namespace) -> Path:
    """The dataset to benchmark: ``--data``, or a cached generated one (made if absent)."""
    if args.data:
        return Path(args.data)
    n = records_of(args.scale)
    gen = _synth_generate() if args.source in ("auto", "synth") else None
    if args.source == "synth" and gen is None:
        msg = "--source synth: adanalytics.synth.generate is not available"
        raise SystemExit(msg)
    kind = "synth" if gen is not None else "builtin"
    out = DATA_DIR / f"{kind}-{args.scale}-s{args.seed}"
    if (out / "_SUCCESS").exists():
        return out
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / ".gitignore").write_text("*\n")
    t0 = time.perf_counter()
    log(f"generating {n:,} location records ({kind}) into {out} ...")
    if gen is not None:
        scale: Any = args.scale if args.scale in SCALES else n
        gen(str(out), scale=scale, seed=args.seed)
    else:
        write_tables(generate_city(n, seed=args.seed), out)
    (out / "_SUCCESS").write_text("")
    log(f"generated in {time.perf_counter() - t0:.1f} s")
    return out


def write_tables(tables: dict[str, pd.DataFrame], out: Path) -> None:
    """Write the five tables as ``NAME.parquet``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)


_CATEGORIES = np.array(["restaurant", "bar", "cafe", "hotel", "supermarket", "pharmacy",
                        "gym", "clothing", "electronics", "cinema", "bakery", "bookstore"])
_CATEGORY_W = np.array([22, 12, 10, 5, 8, 9, 5, 12, 6, 2, 7, 2], dtype=float)


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _offset(lat: np.ndarray, lon: np.ndarray, dx_m: np.ndarray,
            dy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move points by metres east/north (equirectangular, fine at city scale)."""
    lat2 = lat + dy_m / _M_PER_DEG
    lon2 = lon + dx_m / (_M_PER_DEG * np.cos(np.radians(lat)))
    return lat2, lon2


def generate_city(records: int, seed: int = 42, centre: tuple[float, float] = RECIFE,
                  start: str = "2025-01-01", months: int = 3,
                  establishments: int | None = None) -> dict[str, pd.DataFrame]:
    """A stand-alone synthetic city (used until/unless ``adanalytics.synth`` is there).

    Establishments (``max(100, records / 1000)``) sit in commercial areas (80 %) or
    scattered; users have home and work anchors; a location record is a visit (close to
    an establishment, GPS noise of ~20 m), at home, at work or roaming. About 10 % of the
    records end up within 50 m of some establishment. A third of the visits follow an
    interaction of the same user with an ad of the establishment 0-8 h earlier.
    """
    rng = np.random.default_rng(seed)
    lat0, lon0 = centre
    n_est = establishments or int(min(max(100, records // 1000), 200_000))
    n_users = max(10, records // 100)
    n_areas = max(4, n_est // 150)
    # the metropolitan area grows with the number of establishments (constant density)
    k = max(1.0, float(np.sqrt(n_est / 1000)))

    # --- commercial areas: centres around downtown, kept west of the coast line
    a_lat, a_lon = _offset(np.full(n_areas, lat0), np.full(n_areas, lon0),
                           rng.normal(-2500 * k, 3500 * k, n_areas), rng.normal(0, 4500 * k, n_areas))
    a_lon = np.minimum(a_lon, lon0 + 0.01 * k)
    a_weight = rng.pareto(2.0, n_areas) + 1

    # --- establishments
    in_area = rng.random(n_est) < 0.9
    area = rng.choice(n_areas, n_est, p=a_weight / a_weight.sum())
    # an area's spread grows with its size: at most ~1.5 establishments per 50 m disc
    a_sigma = np.maximum(100.0, 35.0 * np.sqrt(np.bincount(area, minlength=n_areas)))
    e_lat, e_lon = _offset(a_lat[area], a_lon[area], rng.normal(0, 1, n_est) * a_sigma[area],
                           rng.normal(0, 1, n_est) * a_sigma[area])
    s_lat, s_lon = _offset(np.full(n_est, lat0), np.full(n_est, lon0),
                           rng.normal(-3000 * k, 5000 * k, n_est), rng.normal(0, 6000 * k, n_est))
    e_lat = np.where(in_area, e_lat, s_lat)
    e_lon = np.minimum(np.where(in_area, e_lon, s_lon), lon0 + 0.012 * k)
    e_cat = rng.choice(_CATEGORIES, n_est, p=_CATEGORY_W / _CATEGORY_W.sum())
    est_id = _ids("e", n_est)
    establishments = pd.DataFrame({
        "establishment_id": est_id,
        "name": np.char.add(np.char.add(e_cat.astype(str), " "), np.arange(n_est).astype(str)).astype(object),
        "category": e_cat.astype(object),
        "lat": e_lat,
        "lon": e_lon,
    })

    # --- campaigns and ads (1-3 ads per establishment)
    t_start = pd.Timestamp(start, tz="America/Recife")
    t_end = t_start + pd.DateOffset(months=months)
    n_days = int((t_end - t_start).days)
    n_camp = max(5, n_est // 20)
    c_start = rng.integers(0, max(1, n_days - 20), n_camp)
    c_len = rng.integers(14, n_days + 1, n_camp)
    day0 = t_start.tz_localize(None).normalize()
    campaigns = pd.DataFrame({
        "campaign_id": _ids("c", n_camp),
        "name": np.array([f"Campaign {i}" for i in range(n_camp)], dtype=object),
        "start_date": (day0 + pd.to_timedelta(c_start, unit="D")).date,
        "end_date": (day0 + pd.to_timedelta(np.minimum(c_start + c_len, n_days - 1), unit="D")).date,
    })
    ads_per = rng.integers(1, 4, n_est)
    ad_est = np.repeat(np.arange(n_est), ads_per)
    n_ads = len(ad_est)
    ad_camp = rng.integers(0, n_camp, n_ads)
    ads = pd.DataFrame({
        "ad_id": _ids("a", n_ads),
        "campaign_id": campaigns["campaign_id"].to_numpy()[ad_camp],
        "establishment_id": est_id[ad_est],
        "category": e_cat[ad_est].astype(object),
    })
    first_ad = np.concatenate([[0], np.cumsum(ads_per)[:-1]])
    camp_ctr = rng.uniform(0.005, 0.06, n_camp)

    # --- users: home anywhere in town, work in a commercial area
    h_lat, h_lon = _offset(np.full(n_users, lat0), np.full(n_users, lon0),
                           rng.normal(-3500 * k, 4500 * k, n_users), rng.normal(0, 5500 * k, n_users))
    h_lon = np.minimum(h_lon, lon0 + 0.012 * k)
    w_area = rng.choice(n_areas, n_users, p=a_weight / a_weight.sum())
    w_lat, w_lon = _offset(a_lat[w_area], a_lon[w_area], rng.normal(0, 2500, n_users),
                           rng.normal(0, 2500, n_users))
    activity = rng.pareto(2.0, n_users) + 1

    # --- location records
    user = rng.choice(n_users, records, p=activity / activity.sum())
    kind = rng.choice(4, records, p=[0.05, 0.45, 0.25, 0.25])  # visit, home, work, roaming
    e_pop = rng.pareto(1.0, n_est) + 1
    visit_est = rng.choice(n_est, records, p=e_pop / e_pop.sum())
    roam_area = rng.integers(0, n_areas, records)
    lat = np.empty(records)
    lon = np.empty(records)
    for k, (base_lat, base_lon, sigma) in enumerate((
        (e_lat[visit_est], e_lon[visit_est], 18.0),
        (h_lat[user], h_lon[user], 40.0),
        (w_lat[user], w_lon[user], 60.0),
        (a_lat[roam_area], a_lon[roam_area], 2500.0),
    )):
        sel = kind == k
        la, lo = _offset(base_lat[sel], base_lon[sel], rng.normal(0, sigma, sel.sum()),
                         rng.normal(0, sigma, sel.sum()))
        lat[sel], lon[sel] = la, lo
    # local time of day by kind: visits 10-22 h, home evenings/nights, work office hours
    day = rng.integers(0, n_days, records)
    hour_mu = np.array([16.0, 21.0, 13.0, 15.0])[kind]
    hour_sd = np.array([3.5, 4.0, 2.5, 4.0])[kind]
    sec = np.mod(rng.normal(hour_mu, hour_sd) * 3600.0, 86400.0)
    t_loc_ns = (day0.value + day.astype(np.int64) * 86_400_000_000_000
                + (sec * 1e9).astype(np.int64))
    ts = pd.DatetimeIndex(t_loc_ns).tz_localize("America/Recife", ambiguous="NaT",
                                                  nonexistent="shift_forward").tz_convert("UTC")
    order = np.argsort(ts.asi8, kind="stable")  # a location feed arrives in time order
    user_id = _ids("u", n_users)
    locations = pd.DataFrame({
        "user_id": user_id[user[order]],
        "lat": lat[order],
        "lon": lon[order],
        "ts": ts[order],
    })

    # --- interactions: background + planted ones 0-8 h before a third of the visits
    vis = np.flatnonzero(kind == 0)
    planted = vis[rng.random(len(vis)) < 1 / 3]
    n_bg = max(10, records // 10 - len(planted))
    p_user = np.concatenate([user[planted], rng.choice(n_users, n_bg, p=activity / activity.sum())])
    p_est = visit_est[planted]
    p_ad = first_ad[p_est] + rng.integers(0, 1 << 30, len(planted)) % ads_per[p_est]
    bg_ad = rng.integers(0, n_ads, n_bg)
    i_ad = np.concatenate([p_ad, bg_ad])
    i_ts = np.concatenate([
        ts.asi8[planted] - (rng.uniform(0, 8 * 3600, len(planted)) * 1e9).astype(np.int64),
        rng.integers(ts.asi8.min(), ts.asi8.max(), n_bg),
    ])
    click = rng.random(len(i_ad)) < camp_ctr[ad_camp[i_ad]]
    o = np.argsort(i_ts, kind="stable")
    interactions = pd.DataFrame({
        "user_id": user_id[p_user[o]],
        "ad_id": ads["ad_id"].to_numpy()[i_ad[o]],
        "action": np.where(click[o], "click", "view").astype(object),
        "ts": pd.DatetimeIndex(i_ts[o]).tz_localize("UTC"),
    })
    return {
        "campaigns": campaigns,
        "ads": ads,
        "establishments": establishments,
        "interactions": interactions,
        "locations": locations,
    }


def load_tables(path: Path) -> Any:
    """Read and validate a dataset with the pandas engine (not timed): its Tables."""
    import adanalytics as aa

    ds = aa.open_dataset(str(path), engine="pandas")
    return ds.tables


# --------------------------------------------------------------------------------------
# timing and memory
# --------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_bytes(tree: bool = False) -> int:
    """Resident memory of this process (``tree``: plus all its descendants, e.g. a Spark
    driver JVM and its Python workers)."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for p in me.children(recursive=True) if tree else []:
        with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
            total += p.memory_info().rss
    return int(total)


class PeakRSS:
    """Peak resident memory of this process (``tree``: and its descendants) while the
    ``with`` block runs (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.005, *, tree: bool = False) -> None:
        self.interval = interval
        self.tree = tree
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.tree))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = rss_bytes(self.tree)
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.tree))

    @property
    def extra(self) -> int:
        """Peak above the resident memory at the start of the block."""
        return self.peak - self.start


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the process (all threads)
    peak_rss: int = 0
    extra_rss: int = 0
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def add(self, other: Timing) -> None:
        """Merge the runs of ``other`` (its result replaces this one's)."""
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.peak_rss = max(self.peak_rss, other.peak_rss)
        self.extra_rss = max(self.extra_rss, other.extra_rss)
        self.result = other.result

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")


def settle(busy: float = 0.1, window: float = 0.25, limit: float = 10.0) -> float:
    """Wait until the machine's CPUs are busy less than ``busy`` of a ``window`` (e.g. a
    JVM's collector and cleaner threads after a Spark job), at most ``limit`` seconds.
    Returns the seconds waited."""

    def ticks() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        b0, t0 = ticks()
        time.sleep(window)
        b1, t1 = ticks()
        if t1 > t0 and (b1 - b0) / (t1 - t0) < busy:
            break
    return time.perf_counter() - start


def timed(fn: Callable[[], Any], repeat: int = 1) -> Timing:
    """Run ``fn`` ``repeat`` times: wall-clock and CPU seconds of each, peak RSS, the
    last result."""
    t = Timing()
    for _ in range(max(1, repeat)):
        t.result = None
        gc.collect()
        with PeakRSS() as mem:
            c0 = time.process_time()
            t0 = time.perf_counter()
            t.result = fn()
            t.seconds.append(time.perf_counter() - t0)
            t.cpu.append(time.process_time() - c0)
        t.peak_rss = max(t.peak_rss, mem.peak)
        t.extra_rss = max(t.extra_rss, mem.extra)
    return t


def machine() -> str:
    """One line describing this machine."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, "
            f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}")


def max_rss_process() -> int:
    """Peak resident memory of the whole run so far (bytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain-text table (markdown-compatible)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
