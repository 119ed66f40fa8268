"""Visit detection: the pandas engine against SedonaDB, GeoPandas and scikit-learn.

    python benchmarks/visits.py --scale medium        # 1e7 location records

Everything runs in this process on in-memory tables (reading the files is not timed).
A visit is a location record strictly closer than 50 m (haversine, sphere of radius
6,371,008.8 m) to an establishment (SPEC §3.2). Methods:

* pandas engine - ``place_index`` (the grid index) and ``visit_pairs`` (detection), the
  full ``visits(by="total" | "month")`` and ``attribution`` (SPEC §3.3).
* SedonaDB - an ``ST_DWithin`` distance join of points loaded as Arrow (geoarrow
  WKB): on lon/lat degrees (planar; the radius converted at the equator, as usually
  written), on points projected to UTM 25S metres, and on geography (sphere, metres).
* GeoPandas - ``sjoin(predicate="dwithin", distance=50)`` on UTM 25S (EPSG:31985).
* scikit-learn - ``BallTree(metric="haversine").query_radius``.

Slow methods run on a random sample of the records (``--sample-*``); their throughput
is the sample's and the row says so. The pairs of every method are checked against
the exact haversine: our engine against a brute force over all establishments on a
sample, the others pair by pair (found but >= 50 m, or missed though < 50 m).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as bc

from adanalytics.engines.pandas import attribution as attr
from adanalytics.engines.pandas import visits as vis
from adanalytics.geo import haversine_m
from adanalytics.semantics import ATTRIBUTION_WINDOW, EARTH_RADIUS_M, VISIT_RADIUS_M

UTM_25S = "EPSG:31985"  # SIRGAS 2000 / UTM zone 25S (Recife)
TZ = "America/Recife"


def _parser() -> Any:
    p = bc.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--radius", type=float, default=VISIT_RADIUS_M, help="metres (default 50)")
    p.add_argument("--sample-truth", type=int, default=20_000,
                   help="records checked against a brute force over all establishments")
    p.add_argument("--sample-geopandas", type=int, default=1_000_000,
                   help="records given to GeoPandas (0 = all)")
    p.add_argument("--sample-balltree", type=int, default=200_000,
                   help="records given to the BallTree (0 = all)")
    p.add_argument("--sample-geography", type=int, default=0,
                   help="records given to SedonaDB's geography join (0 = all)")
    p.add_argument("--skip", default="",
                   help="comma-separated methods to skip: sedona,geography,geopandas,balltree,"
                        "attribution,visits")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


# --------------------------------------------------------------------------------------
# pair bookkeeping
# --------------------------------------------------------------------------------------
def pair_codes(q: np.ndarray, p: np.ndarray, n_points: int) -> np.ndarray:
    """(record, establishment) pairs as sorted unique int64 codes."""
    return np.unique(np.asarray(q, np.int64) * n_points + np.asarray(p, np.int64))


def check_against(codes: np.ndarray, truth: np.ndarray, n_points: int, lat: np.ndarray,
                  lon: np.ndarray, elat: np.ndarray, elon: np.ndarray,
                  radius: float) -> dict[str, Any]:
    """Pairs found but not within the radius, and pairs missed, by exact haversine."""
    extra = np.setdiff1d(codes, truth, assume_unique=True)
    missed = np.setdiff1d(truth, codes, assume_unique=True)
    out: dict[str, Any] = {"extra": len(extra), "missed": len(missed)}
    for name, c in (("extra", extra), ("missed", missed)):
        if len(c):
            d = haversine_m(lat[c // n_points], lon[c // n_points], elat[c % n_points],
                            elon[c % n_points])
            out[f"{name}_m"] = [round(float(d.min()), 4), round(float(d.max()), 4)]
    return out


def brute_force(lat: np.ndarray, lon: np.ndarray, elat: np.ndarray, elon: np.ndarray,
                radius: float, block: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (record, establishment) pairs closer than ``radius``: every pair compared."""
    qs, ps, ds = [], [], []
    for a in range(0, len(lat), block):
        d = haversine_m(lat[a:a + block, None], lon[a:a + block, None], elat[None, :],
                        elon[None, :])
        q, p = np.nonzero(d < radius)
        qs.append(q + a)
        ps.append(p)
        ds.append(d[q, p])
    return np.concatenate(qs), np.concatenate(ps), np.concatenate(ds)


# --------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------
def sedona_tables(con: Any, lat: np.ndarray, lon: np.ndarray, elat: np.ndarray,
                  elon: np.ndarray, suffix: str, *, x: tuple[np.ndarray, np.ndarray] | None = None,
                  ex: tuple[np.ndarray, np.ndarray] | None = None, spherical: bool = False) -> None:
    """Register ``loc{suffix}`` / ``est{suffix}`` views: id + WKB point (geoarrow)."""
    import geoarrow.pyarrow as ga
    import pyarrow as pa

    def points(px: np.ndarray, py: np.ndarray) -> Any:
        storage = pa.StructArray.from_arrays([pa.array(px), pa.array(py)], names=["x", "y"])
        typ = ga.point()
        if x is None:
            typ = typ.with_crs(ga.OGC_CRS84)
        arr = ga.as_wkb(typ.wrap_array(storage))
        if spherical:
            arr = ga.with_edge_type(arr, ga.EdgeType.SPHERICAL)
        return arr

    lx, ly = x if x is not None else (lon, lat)
    exx, exy = ex if ex is not None else (elon, elat)
    loc = pa.table({"rid": np.arange(len(lx), dtype=np.int64), "geom": points(lx, ly)})
    est = pa.table({"eid": np.arange(len(exx), dtype=np.int64), "geom": points(exx, exy)})
    con.create_data_frame(loc).to_view(f"loc{suffix}", overwrite=True)
    con.create_data_frame(est).to_view(f"est{suffix}", overwrite=True)


def sedona_join(con: Any, suffix: str, distance: float) -> tuple[np.ndarray, np.ndarray]:
    sql = (f"SELECT l.rid, e.eid FROM loc{suffix} l JOIN est{suffix} e "
           f"ON ST_DWithin(l.geom, e.geom, {distance!r})")
    t = con.sql(sql).to_arrow_table()
    return t["rid"].to_numpy(), t["eid"].to_numpy()


def utm(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", UTM_25S, always_xy=True)
    return tr.transform(lon, lat)


def geopandas_join(lx: np.ndarray, ly: np.ndarray, ex: np.ndarray, ey: np.ndarray,
                   radius: float) -> tuple[Any, Any]:
    import geopandas as gpd

    left = gpd.GeoDataFrame({"rid": np.arange(len(lx))}, geometry=gpd.points_from_xy(lx, ly),
                            crs=UTM_25S)
    right = gpd.GeoDataFrame({"eid": np.arange(len(ex))}, geometry=gpd.points_from_xy(ex, ey),
                             crs=UTM_25S)
    return left, right


def balltree_pairs(tree: Any, lat: np.ndarray, lon: np.ndarray,
                   radius: float) -> tuple[np.ndarray, np.ndarray]:
    ind = tree.query_radius(np.radians(np.column_stack([lat, lon])), r=radius / EARTH_RADIUS_M)
    counts = np.fromiter((len(i) for i in ind), dtype=np.int64, count=len(ind))
    q = np.repeat(np.arange(len(ind), dtype=np.int64), counts)
    p = np.concatenate(ind).astype(np.int64) if counts.sum() else np.empty(0, np.int64)
    return q, p


# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    radius = float(args.radius)
    rng = np.random.default_rng(args.seed)
    command = "python benchmarks/visits.py " + " ".join(sys.argv[1:] if argv is None else argv)

    path = bc.dataset_dir(args)
    bc.log(f"loading {path} (pandas engine: read + validate; not timed) ...")
    tables = bc.load_tables(path)
    loc, est = tables.locations, tables.establishments
    n, m = len(loc), len(est)
    lat = loc["lat"].to_numpy(np.float64)
    lon = loc["lon"].to_numpy(np.float64)
    elat = est["lat"].to_numpy(np.float64)
    elon = est["lon"].to_numpy(np.float64)
    bc.log(f"{n:,} location records, {m:,} establishments, {len(tables.interactions):,} "
           f"interactions, {len(tables.ads):,} ads")

    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()

    def add(method: str, records: int, t: bc.Timing, pairs: int | None, check: str,
            note: str = "", extrapolated: bool = False) -> dict[str, Any]:
        row = {
            "method": method, "records": records, "seconds": t.median, "cpu": t.cpu_median,
            "rate": records / t.median, "pairs": pairs, "check": check,
            "peak_rss": t.peak_rss, "extra_rss": t.extra_rss, "note": note,
            "runs": len(t.seconds), "extrapolated": extrapolated,
        }
        rows.append(row)
        bc.log(f"{method}: {t.median:.3f} s, {records / t.median / 1e6:.2f} M records/s"
               + (f", {pairs:,} pairs" if pairs is not None else ""))
        return row

    # ---- head to head: the engine's detection and SedonaDB's joins, interleaved ------
    # Rounds of [visit_pairs, kernel, SedonaDB (degrees), SedonaDB (UTM)] so that every
    # method sees the same machine (the load of a shared machine drifts over minutes).
    t_index = bc.timed(lambda: vis.place_index(est, radius), args.repeat)
    places = t_index.result
    ux = uy = eux = euy = None
    if "sedona" not in skip or "geopandas" not in skip:
        bc.log("projecting to UTM 25S (not timed) ...")
        ux, uy = utm(lat, lon)
        eux, euy = utm(elat, elon)
    con = None
    deg = radius / (EARTH_RADIUS_M * math.pi / 180.0)
    sedona_variants: list[tuple[str, str, float]] = []
    if "sedona" not in skip:
        import sedonadb

        bc.log("loading the tables into SedonaDB as geoarrow (not timed) ...")
        con = sedonadb.connect()
        sedona_tables(con, lat, lon, elat, elon, "deg")
        sedona_tables(con, lat, lon, elat, elon, "utm", x=(ux, uy), ex=(eux, euy))
        sedona_variants = [
            ("deg", f"SedonaDB: ST_DWithin(ST_Point lon/lat, {deg:.3e} deg) [planar degrees]",
             deg),
            ("utm", f"SedonaDB: ST_DWithin(ST_Point UTM 25S, {radius:g} m) [planar metres]",
             radius),
        ]
    t_pairs, t_kernel = bc.Timing(), bc.Timing()
    t_sedona = {v[0]: bc.Timing() for v in sedona_variants}
    for rnd in range(max(1, args.repeat)):
        bc.log(f"round {rnd + 1}/{args.repeat}")
        t_pairs.add(bc.timed(lambda: vis.visit_pairs(loc, places)))
        t_kernel.add(bc.timed(lambda: places.cells.within(lat, lon)))
        for suffix, _, distance in sedona_variants:
            t_sedona[suffix].add(bc.timed(
                lambda suffix=suffix, distance=distance: sedona_join(con, suffix, distance)))
    pairs = t_pairs.result
    qi, pi, dist = t_kernel.result
    ours = pair_codes(qi, pi, m)

    # truth on a sample: every establishment compared (brute force)
    s = np.sort(rng.choice(n, min(args.sample_truth, n), replace=False))
    bq, bp, bd = brute_force(lat[s], lon[s], elat, elon, radius)
    in_s = np.isin(qi, s)
    our_c = np.searchsorted(s, qi[in_s]) * m + pi[in_s]
    o = np.argsort(our_c)
    our_c, our_d = our_c[o], dist[in_s][o]
    truth_c = bq * m + bp
    o = np.argsort(truth_c)
    truth_c, truth_d = truth_c[o], bd[o]
    same = np.array_equal(our_c, truth_c)
    bit_equal = same and np.array_equal(our_d, truth_d)
    truth_note = (f"== brute force on {len(s):,} sampled records ({len(truth_c):,} pairs; "
                  f"distances bit-identical: {bit_equal})" if same else
                  f"MISMATCH vs brute force on {len(s):,} records: "
                  f"{check_against(np.unique(our_c), truth_c, m, lat[s], lon[s], elat, elon, radius)}")
    if not (same and bit_equal):
        bc.log("ERROR: " + truth_note)
    same_pairs = (len(pairs) == len(qi)
                  and np.array_equal(pairs["distance_m"].to_numpy(), dist))

    add("pandas: index build (place_index)", m, t_index, None, "",
        note=f"{len(places.cells.keys):,} cells, {len(places.cells.items):,} entries; "
             "records/s = establishments/s")
    add("pandas: visit detection (visit_pairs, prebuilt index)", n, t_pairs, len(pairs),
        truth_note)
    add("pandas: geo kernel (CellIndex.within, arrays)", n, t_kernel, len(qi),
        "same pairs" if same_pairs else "DIFFERENT pairs from visit_pairs")
    both = bc.Timing(seconds=[t_index.median + t_pairs.median],
                     cpu=[t_index.cpu_median + t_pairs.cpu_median], peak_rss=t_pairs.peak_rss,
                     extra_rss=max(t_index.extra_rss, t_pairs.extra_rss))
    add("pandas: index build + visit detection", n, both, len(pairs), "")
    del pairs
    t_pairs.result = t_kernel.result = None

    sedona_rows: list[dict[str, Any]] = []
    for suffix, name, _ in sedona_variants:
        rq, rp = t_sedona[suffix].result
        chk = check_against(pair_codes(rq, rp, m), ours, m, lat, lon, elat, elon, radius)
        sedona_rows.append(add(name, n, t_sedona[suffix], len(rq), _check_text(chk)))
        t_sedona[suffix].result = None
        con.drop_view(f"loc{suffix}")
        con.drop_view(f"est{suffix}")

    if con is not None and "geography" not in skip:
        ng = n if args.sample_geography <= 0 else min(n, args.sample_geography)
        sub = np.sort(rng.choice(n, ng, replace=False)) if ng < n else np.arange(n)
        sedona_tables(con, lat[sub], lon[sub], elat, elon, "geo", spherical=True)
        t = bc.timed(lambda: sedona_join(con, "geo", radius), 1)
        rq, rp = t.result
        rq = sub[rq]
        ref = ours if ng == n else pair_codes(qi[np.isin(qi, sub)], pi[np.isin(qi, sub)], m)
        chk = check_against(pair_codes(rq, rp, m), ref, m, lat, lon, elat, elon, radius)
        sedona_rows.append(add(f"SedonaDB: ST_DWithin(geography, {radius:g} m) [sphere]", ng,
                               t, len(rq), _check_text(chk),
                               note="sample" if ng < n else "1 run"))
        con.drop_view("locgeo")
        con.drop_view("estgeo")
        t.result = None

    # ---- the full analyses ---------------------------------------------------------
    if "visits" not in skip:
        for by in ("total", "month"):
            t = bc.timed(lambda by=by: vis.visits(loc, est, by=by, tz=TZ, radius_m=radius),
                         max(1, args.repeat - 1))
            add(f'pandas: visits(by="{by}") (index + detection + aggregation)', n, t,
                None, f"{len(t.result):,} rows, {int(t.result['visits'].sum()):,} visits")
            if int(t.result["visits"].sum()) != len(qi):
                bc.log("ERROR: visits() total differs from the number of pairs")

    if "attribution" not in skip:
        for by in ("total", "month"):
            t = bc.timed(lambda by=by: attr.attribution(
                loc, est, tables.interactions, tables.ads, by=by, tz=TZ,
                window=ATTRIBUTION_WINDOW, radius_m=radius), max(1, args.repeat - 1))
            res = t.result
            add(f'pandas: attribution(by="{by}") (+ {len(tables.interactions):,} interactions)',
                n, t, None, f"{len(res):,} rows, {int(res['attributed_visits'].sum()):,} of "
                f"{int(res['visits'].sum()):,} visits attributed")

    # ---- GeoPandas ---------------------------------------------------------------
    if "geopandas" not in skip:
        ng = n if args.sample_geopandas <= 0 else min(n, args.sample_geopandas)
        sub = np.sort(rng.choice(n, ng, replace=False)) if ng < n else np.arange(n)
        left, right = geopandas_join(ux[sub], uy[sub], eux, euy, radius)
        t = bc.timed(lambda: left.sjoin(right, predicate="dwithin", distance=radius), 1)
        j = t.result
        rq = sub[j["rid"].to_numpy()]
        rp = j["eid"].to_numpy()
        ref_mask = np.isin(qi, sub)
        chk = check_against(pair_codes(rq, rp, m), pair_codes(qi[ref_mask], pi[ref_mask], m),
                            m, lat, lon, elat, elon, radius)
        add(f"GeoPandas: sjoin(dwithin, {radius:g} m) on UTM 25S", ng, t, len(rq),
            _check_text(chk), note="sample; rate extrapolates linearly" if ng < n else "")
        del left, right, j
        t.result = None

    # ---- scikit-learn BallTree ---------------------------------------------------
    if "balltree" not in skip:
        from sklearn.neighbors import BallTree

        nb = n if args.sample_balltree <= 0 else min(n, args.sample_balltree)
        sub = np.sort(rng.choice(n, nb, replace=False)) if nb < n else np.arange(n)
        t_build = bc.timed(lambda: BallTree(np.radians(np.column_stack([elat, elon])),
                                            metric="haversine"), 1)
        tree = t_build.result
        t = bc.timed(lambda: balltree_pairs(tree, lat[sub], lon[sub], radius), 1)
        rq, rp = t.result
        rq = sub[rq]
        ref_mask = np.isin(qi, sub)
        chk = check_against(pair_codes(rq, rp, m), pair_codes(qi[ref_mask], pi[ref_mask], m),
                            m, lat, lon, elat, elon, radius)
        add(f"scikit-learn: BallTree(haversine).query_radius({radius:g} m)", nb, t, len(rq),
            _check_text(chk), note=("sample; " if nb < n else "") +
            f"tree build {t_build.median:.3f} s not included")

    # ---- report ------------------------------------------------------------------
    load1 = os.getloadavg()
    ref = max(sedona_rows, key=lambda r: r["rate"]) if sedona_rows else None
    print()
    print(f"command: {command}")
    print(f"machine: {bc.machine()}")
    print(f"load average at start/end (1 min): {load0[0]:.1f} / {load1[0]:.1f}")
    print(f"data: {path} - {n:,} location records, {m:,} establishments, radius {radius:g} m")
    if ref:
        print(f"SedonaDB reference (the fastest SedonaDB formulation): {ref['method']}")
    print()
    table = []
    for r in rows:
        table.append({
            "method": r["method"] + (" *" if r["note"].startswith("sample") else ""),
            "records": f"{r['records']:,}",
            "seconds": f"{r['seconds']:.3f}",
            "cpu s": f"{r['cpu']:.2f}",
            "records/s": f"{r['rate'] / 1e6:.2f} M",
            "x SedonaDB": (f"{r['rate'] / ref['rate']:.2f}" if ref and "index build (" not in r["method"]
                           else ""),
            "x SedonaDB (cpu)": (f"{(r['records'] / r['cpu']) / (ref['records'] / ref['cpu']):.2f}"
                                 if ref and "index build (" not in r["method"] and r["cpu"] > 0
                                 and ref["cpu"] > 0 else ""),
            "pairs": "" if r["pairs"] is None else f"{r['pairs']:,}",
            "peak RSS (+during)": f"{bc.fmt_bytes(r['peak_rss'])} (+{bc.fmt_bytes(r['extra_rss'])})",
            "check": r["check"],
        })
    bc.print_table(table, ["method", "records", "seconds", "cpu s", "records/s", "x SedonaDB",
                           "x SedonaDB (cpu)", "pairs",
                           "peak RSS (+during)", "check"])
    print()
    print("* on a random sample of the records; records/s is the sample's (extrapolates "
          "linearly: both sides are index look-ups per record).")
    for r in rows:
        if r["note"] and not r["note"].startswith("sample"):
            print(f"- {r['method']}: {r['note']}")
    print(f"seconds: wall clock, median of {args.repeat} runs for the fast methods, 1 run "
          f"otherwise; cpu s: CPU seconds of the process (all threads, SedonaDB's included) - "
          f"the fairer figure when the machine is shared; peak RSS: resident memory of the "
          f"process while the method ran (+ above its start); process peak "
          f"{bc.fmt_bytes(bc.max_rss_process())}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": command, "machine": bc.machine(), "load": [load0, load1],
            "records": n, "establishments": m, "rows": rows,
        }, indent=2, default=str))
    return 0


def _check_text(chk: dict[str, Any]) -> str:
    if not chk["extra"] and not chk["missed"]:
        return "== exact haversine"
    parts = []
    if chk["extra"]:
        parts.append(f"{chk['extra']:,} extra (haversine {chk['extra_m'][0]}-{chk['extra_m'][1]} m)")
    if chk["missed"]:
        parts.append(f"{chk['missed']:,} missed (haversine {chk['missed_m'][0]}-{chk['missed_m'][1]} m)")
    return "; ".join(parts) + " vs exact haversine"


if __name__ == "__main__":
    raise SystemExit(main())
