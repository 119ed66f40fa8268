"""Real-time path without Spark or Redis: message contract, the per-group kernel, maps.

Also the home of the hand-worked scenario (:func:`scenario`) that the Spark job tests
(``test_stream_job.py``) replay through Redis: users walk along the meridian of an
establishment; ``track(user, [(minute, metres south), ...])``.

- u1 approaches e1 (600 -> 400 m in 5 min): one suggestion.
- u2 moves away: none.
- u3 closes in after a gap of 16 min (> 15): none; 4 min later again: one.
- u4 approaches at +5 (emitted), +10 (cooldown), +66 (61 min after the last one: emitted).
- u5 approaches e2, whose campaign ended in 2023 (inactive): none.
- u6 approaches at +5, then an event dated +3 arrives: late (counted, dropped).
- u7 has two positions at the same instant: taken by (lat, lon), the farther first.
- u8 approaches e3, which has two ads: the one with the higher historical CTR wins.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from adanalytics.engines.pandas.recommendations import recommend
from adanalytics.errors import StreamMessageError
from adanalytics.stream.kernel import GroupState, dead_rows, load_dimensions, step
from adanalytics.stream.messages import (
    EntryId,
    dead_letter_fields,
    encode_position,
    parse_entries,
    parse_position,
)
from tests.builders import LAT0, LON0, dataset
from tests.helpers import offset

T0 = pd.Timestamp("2024-05-10T12:00:00Z")
T0_MS = T0.value // 1_000_000
E2 = offset(LAT0, LON0, north_m=11_000)
E3 = offset(LAT0, LON0, north_m=-11_000)
TZ = "America/Recife"


def track(user: str, steps: list[tuple[float, float]], at: tuple[float, float] = (LAT0, LON0)) -> list[dict]:
    """Positions of ``user``: (minutes after T0, metres south of ``at``)."""
    out = []
    for minute, south in steps:
        lat, lon = offset(at[0], at[1], north_m=-south)
        out.append({"user_id": user, "lat": lat, "lon": lon,
                    "ts_ms": T0_MS + round(minute * 60_000)})
    return out


def scenario_tables() -> dict:
    """The dimension tables of the scenario (and interactions behind the CTR ranking)."""
    views = [("v", "a3", "view", "2024-01-05T10:00:00Z")] * 10 + [("v", "a4", "view", "2024-01-05T10:00:00Z")] * 10
    clicks = [("v", "a3", "click", "2024-01-05T10:00:00Z")] + [("v", "a4", "click", "2024-01-05T10:00:00Z")] * 5
    return dataset(
        campaigns=[("c1", "Active", "2024-01-01", "2024-12-31"),
                   ("c2", "Ended", "2023-01-01", "2023-12-31")],
        ads=[("a1", "c1", "e1", "food"), ("a2", "c2", "e2", "food"),
             ("a3", "c1", "e3", "drinks"), ("a4", "c1", "e3", "drinks")],
        establishments=[("e1", "Cafe", "cafe", LAT0, LON0), ("e2", "Bar", "bar", *E2),
                        ("e3", "Pub", "bar", *E3)],
        interactions=views + clicks,
    )


def scenario() -> tuple[list[dict], list[dict]]:
    """(positions in send order, late positions sent after them)."""
    far = [(20, 700), (30, 800), (40, 900), (50, 1000), (60, 1100)]
    pos = (track("u1", [(0, 600), (5, 400)])
           + track("u2", [(0, 300), (5, 450), (10, 480)])
           + track("u3", [(0, 600), (16, 400), (20, 300)])
           + track("u4", [(0, 600), (5, 400), (10, 300), *far, (66, 450)])
           + track("u5", [(0, 600), (5, 400)], at=E2)
           + track("u6", [(0, 600), (5, 400)])
           + track("u7", [(0, 600), (5, 400), (5, 450)])
           + track("u8", [(0, 600), (5, 400)], at=E3))
    pos.sort(key=lambda p: (p["ts_ms"], p["lat"], p["lon"], p["user_id"]))
    late = track("u6", [(3, 350)])
    return pos, late


def expected_rows() -> pd.DataFrame:
    """Hand-worked suggestions of :func:`scenario` (late event dropped)."""
    rows = [("u1", "e1", "a1", 5, 400.0), ("u3", "e1", "a1", 20, 300.0),
            ("u4", "e1", "a1", 5, 400.0), ("u4", "e1", "a1", 66, 450.0),
            ("u6", "e1", "a1", 5, 400.0), ("u7", "e1", "a1", 5, 450.0),
            ("u8", "e3", "a4", 5, 400.0)]
    return pd.DataFrame({
        "user_id": [r[0] for r in rows], "establishment_id": [r[1] for r in rows],
        "ad_id": [r[2] for r in rows],
        "ts": [T0 + pd.Timedelta(minutes=r[3]) for r in rows],
        "distance_m": [r[4] for r in rows],
    })


def malformed() -> list[tuple[dict, str]]:
    """(fields, rule) of entries that must go to the dead-letter stream."""
    return [
        ({"lat": "-8.05", "lon": "-34.9", "ts": str(T0_MS)}, "missing_field"),
        ({"user_id": "bad1", "lat": "north", "lon": "-34.9", "ts": str(T0_MS)}, "non_numeric"),
        ({"user_id": "bad2", "lat": "-8.05", "lon": "-190.5", "ts": str(T0_MS)}, "out_of_range"),
        ({"user_id": "bad3", "lat": "-8.05", "lon": "-34.9", "ts": "yesterday"}, "bad_ts"),
        ({"user_id": "bad4", "lat": "nan", "lon": "-34.9", "ts": str(T0_MS)}, "non_numeric"),
        ({"user_id": "bad5", "lat": "-8.05", "lon": "-34.9", "ts": "1.5"}, "bad_ts"),
    ]


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """SPEC columns, ids as text, UTC ts, sorted by key: comparable across outputs."""
    cols = ["user_id", "establishment_id", "ad_id", "ts", "distance_m"]
    d = df[cols].copy()
    for c in cols[:3]:
        d[c] = d[c].astype(str)
    d["ts"] = pd.to_datetime(d["ts"], utc=True).astype("datetime64[ns, UTC]")
    d["distance_m"] = d["distance_m"].astype(np.float64)
    return d.sort_values(["user_id", "ts", "establishment_id"], kind="mergesort").reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same suggestions (distance within 1e-6 m: hand-worked distances are rounded)."""
    g, w = normalise(got), normalise(want)
    assert len(g) == len(w), f"{len(g)} rows, expected {len(w)}\n{g}\n{w}"
    pd.testing.assert_frame_equal(g.drop(columns="distance_m"), w.drop(columns="distance_m"))
    np.testing.assert_allclose(g["distance_m"], w["distance_m"], rtol=0, atol=1e-6)


# --- message contract ------------------------------------------------------------------
def test_valid_position_parses_with_exact_floats() -> None:
    fields = encode_position("u1", -8.123456789012345, -34.9, T0_MS)
    p = parse_position(fields)
    assert (p.user_id, p.lat, p.lon, p.ts_ms) == ("u1", -8.123456789012345, -34.9, T0_MS)
    # bytes (as read with decode_responses=False) work the same
    assert parse_position({k.encode(): v.encode() for k, v in fields.items()}) == p


@pytest.mark.parametrize(("fields", "rule"), malformed())
def test_malformed_positions_name_their_rule(fields: dict, rule: str) -> None:
    with pytest.raises(StreamMessageError) as err:
        parse_position(fields)
    assert err.value.args[0] == rule
    assert isinstance(err.value.args[1], str) and err.value.args[1]


def test_other_broken_fields() -> None:
    cases = {
        "missing_field": {"user_id": "  ", "lat": "1", "lon": "1", "ts": "1"},
        "bad_encoding": {b"user_id": b"\xff\xfe", b"lat": b"1", b"lon": b"1", b"ts": b"1"},
        "out_of_range": {"user_id": "u", "lat": "90.0001", "lon": "1", "ts": "1"},
    }
    for rule, fields in cases.items():
        with pytest.raises(StreamMessageError) as err:
            parse_position(fields)
        assert err.value.args[0] == rule
    # boundaries and integral float ts are fine; ts beyond 2262 is not
    assert parse_position({"user_id": "u", "lat": "-90", "lon": "180", "ts": "1.7e12"}).ts_ms == 1_700_000_000_000
    with pytest.raises(StreamMessageError, match="1900-2262"):
        parse_position({"user_id": "u", "lat": "0", "lon": "0", "ts": "99999999999999"})


def test_parse_entries_columns_and_dead_letter_fields() -> None:
    entries = [("5-0", encode_position("u1", 1.0, 2.0, 3)),
               ("5-1", {"user_id": "u2", "lat": "x", "lon": "2", "ts": "3", "reason": "mine"})]
    cols = parse_entries(entries)
    assert cols["entry_id"] == ["5-0", "5-1"] and cols["entry_seq"] == [0, 1]
    assert cols["user_id"] == ["u1", None] and cols["rule"] == [None, "non_numeric"]
    dead = dead_letter_fields("5-1", cols["rule"][1], cols["reason"][1], cols["original"][1], "positions")
    assert dead["rule"] == "non_numeric" and dead["source_id"] == "5-1"
    assert dead["lat"] == "x" and dead["original_reason"] == "mine"
    assert "lat is not a number" in dead["reason"]


def test_entry_ids_order_like_redis() -> None:
    ids = ["10-2", "9-100", "10-10", "10", "0-1"]
    assert [str(i) for i in sorted(map(EntryId.parse, ids))] == ["0-1", "9-100", "10-0", "10-2", "10-10"]
    with pytest.raises(ValueError, match="MS-SEQ"):
        EntryId.parse("abc")


# --- the kernel ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dims():  # type: ignore[no-untyped-def]
    from adanalytics.stream.job import default_params

    return load_dimensions(scenario_tables(), tz=TZ, params=default_params())


def _events(rows: list[dict], first_ms: int = 1) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["entry_ms"] = np.arange(first_ms, first_ms + len(df), dtype=np.int64)
    df["entry_seq"] = 0
    return df


def _run_batches(events: pd.DataFrame, dims, cuts: list[int], ttl_ms: int | None = None):  # type: ignore[no-untyped-def]
    """Feed ``events`` through :func:`step` in batches cut at ``cuts``."""
    state, outs, late = GroupState(), [], 0
    bounds = [0, *cuts, len(events)]
    for a, b in itertools.pairwise(bounds):
        res = step(events.iloc[a:b], state, dims, now_ms=1_000 * b, ttl_ms=ttl_ms)
        state = GroupState.from_value(res.state.to_value())  # through the stored form
        out = res.output
        outs.append(out[out["kind"] == "suggestion"])
        late += res.late
    return pd.concat(outs, ignore_index=True), late, state


@pytest.mark.parametrize("split", ["one", "each", "pairs"])
def test_step_gives_the_hand_worked_answer_whatever_the_batches(dims, split: str) -> None:  # type: ignore[no-untyped-def]
    pos, late = scenario()
    ev = _events(pos + late)
    cuts = {"one": [], "each": list(range(1, len(ev))), "pairs": list(range(2, len(ev), 2))}[split]
    got, n_late, _ = _run_batches(ev, dims, cuts)
    assert n_late == 1
    assert_same_rows(got, expected_rows())
    # ids: derived from the triggering position's id, unique
    assert got["entry_id"].is_unique
    assert all(s.split("-")[0] == e.split("-")[0] for s, e in zip(got["source_id"], got["entry_id"], strict=True))


def test_stream_equals_batch_rule_on_random_walks(dims) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    n_users, n = 25, 1500
    users = rng.integers(0, n_users, n)
    # users wander around e1/e3 in small steps, a position every 1-10 min
    lat = LAT0 + np.cumsum(rng.normal(0, 0.0015, n)) * 0.2
    lon = LON0 + np.cumsum(rng.normal(0, 0.0015, n)) * 0.2
    ts = T0_MS + np.cumsum(rng.integers(10_000, 120_000, n))
    ev = pd.DataFrame({"user_id": [f"r{u}" for u in users], "lat": lat, "lon": lon, "ts_ms": ts})
    ev = ev.sort_values(["ts_ms", "lat", "lon"], kind="mergesort").reset_index(drop=True)
    batch = recommend(ev.assign(ts=pd.to_datetime(ev["ts_ms"], unit="ms", utc=True)),
                      dims.places, dims.ranked, tz=TZ, params=dims.params).rows
    assert len(batch) > 20  # the walk does approach
    events = _events(ev.to_dict("records"))
    for seed, k in ((0, 5), (1, 15)):
        cuts = sorted(np.random.default_rng(seed).choice(np.arange(1, n), k, replace=False).tolist())
        got, late, _ = _run_batches(events, dims, cuts)
        assert late == 0
        pd.testing.assert_frame_equal(normalise(got), normalise(batch))


def test_late_is_relative_to_arrival_order_within_a_batch(dims) -> None:  # type: ignore[no-untyped-def]
    # arrival order 5, 3, 7 (minutes) for one user in ONE batch: 3 is late although the
    # batch rule would have sorted it in.
    ev = _events(track("z", [(5, 800), (3, 900), (7, 700)]))
    res = step(ev, GroupState(), dims, now_ms=0, ttl_ms=None)
    assert res.late == 1 and res.events == 3
    stats = res.output[res.output["kind"] == "stats"]
    assert stats["late"].tolist() == [1] and stats["events"].tolist() == [3]
    # an event at the same instant as the last one is not late
    again = step(_events(track("z", [(7, 650)])), res.state, dims, now_ms=0, ttl_ms=None)
    assert again.late == 0


def test_state_is_pruned_without_changing_answers(dims) -> None:  # type: ignore[no-untyped-def]
    pos, _ = scenario()
    ev = _events(pos)
    _, _, state = _run_batches(ev, dims, [len(ev) // 2])
    # every suggestion kept can still block one (younger than the user's last event - 1 h)
    last = state.users.set_index("user_id")["ts"]
    for row in state.suggestions.itertuples(index=False):
        assert row.ts > last[row.user_id] - pd.Timedelta(hours=1)
    assert set(state.users["user_id"]) == {f"u{i}" for i in range(1, 9)}
    # users idle (processing time) beyond the TTL are forgotten, with their suggestions
    res = step(_events(track("u1", [(100, 5000)])), state, dims, now_ms=10**9, ttl_ms=1000)
    assert res.state.users["user_id"].tolist() == ["u1"]
    assert res.state.suggestions.empty or set(res.state.suggestions["user_id"]) <= {"u1"}


def test_dead_rows_keep_reason_and_original(dims) -> None:  # type: ignore[no-untyped-def]
    entries = [(f"9-{i}", f) for i, (f, _) in enumerate(malformed())]
    cols = pd.DataFrame(parse_entries(entries))
    out = dead_rows(cols.iloc[::-1])
    assert out["entry_id"].tolist() == [f"9-{i}" for i in range(len(entries))]
    assert out["rule"].tolist() == [r for _, r in malformed()]
    assert json.loads(out["original"].iloc[1])["lat"] == "north"


def test_distances_survive_the_message_round_trip(dims) -> None:  # type: ignore[no-untyped-def]
    # floats travel as repr(): the stream sees bit-identical coordinates
    for x in (-8.050000000000001, 1 / 3, -34.9, 5e-324):
        assert float(encode_position("u", x, x % 180, 0)["lat"]) == x
    assert math.isfinite(dims.places.cells.lat[0])


# --- maps ------------------------------------------------------------------------------
def test_maps_write_html_and_png(tmp_path, dims) -> None:  # type: ignore[no-untyped-def]
    from adanalytics.stream.maps import choose_users, make_maps

    pos, _ = scenario()
    positions = pd.DataFrame(pos)
    positions["ts"] = pd.to_datetime(positions.pop("ts_ms"), unit="ms", utc=True)
    sugg = expected_rows()
    assert choose_users(sugg, max_users=2) == ["u4", "u1"]
    paths = make_maps(positions, sugg, dims.establishments, tmp_path, max_users=3)
    assert paths.users == ["u4", "u1", "u3"]
    html = paths.html.read_text()
    assert "Bokeh" in html and "u4" in html and "ad @ad for @est" in html
    assert paths.png.stat().st_size > 10_000 and paths.png.read_bytes()[:4] == b"\x89PNG"
