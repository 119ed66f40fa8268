"""What the streaming job does with one group of positions: the SPEC §3.7 rule, with state.

:func:`step` is the whole per-group logic of the Spark job, in plain pandas (testable
without Spark): it takes the positions a group (one user, or one hash bucket of users)
received in a micro-batch and the group's state, drops late events, runs the very kernel
of the batch analysis (:func:`adanalytics.engines.pandas.recommendations.recommend`) after
that state, and returns the suggestions plus the new state. So, for the same events, the
stream emits exactly the rows of ``Dataset.recommendations()``, whatever the batch
boundaries.

Late events. The batch form sorts every user's events by (ts, lat, lon); the stream cannot
reorder into the past, so an event older than an event of its user that *arrived before
it* (stream order, across and within micro-batches) is late: counted and dropped. Events
replayed in time order (``adanalytics stream produce``) are never late.

State of a group, per user: the last accepted event (ts, lat, lon), the processing time
the user was last seen (for the idle TTL), and per (user, establishment) the ts of the
last suggestion. It is stored as two Arrow IPC tables in one binary state value.
Pruning never changes an answer for in-order events: a suggestion older than the user's
last event minus the cooldown can no longer block one; a user idle (processing time) for
longer than the TTL is forgotten (their next event starts afresh, as if first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics.engines.pandas.recommendations import RecommenderState, recommend

if TYPE_CHECKING:
    from adanalytics.engines.base import RecommendParams
    from adanalytics.engines.pandas.visits import PlaceIndex

#: Key of the group that carries dead letters through the stateful operator.
DEAD_KEY = ""
#: Suggestions one position can trigger at most (their ids are ``ms-(seq * 1024 + j)``).
MAX_PER_ENTRY = 1024
#: Output columns of a group (the stateful operator's schema; see :data:`OUTPUT_DDL`).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "kind", "user_id", "establishment_id", "ad_id", "ts", "distance_m", "entry_id",
    "source_id", "rule", "reason", "original", "events", "late",
)
OUTPUT_DDL = (
    "kind string, user_id string, establishment_id string, ad_id string, ts timestamp, "
    "distance_m double, entry_id string, source_id string, rule string, reason string, "
    "original string, events long, late long"
)
_TEXT = tuple(c for c in OUTPUT_COLUMNS if c not in ("ts", "distance_m", "events", "late"))
#: "No event yet" in int64 nanoseconds.
_NONE = np.iinfo(np.int64).min
#: Binary state value of a group.
STATE_DDL = "users binary, suggestions binary"


@dataclass
class Dimensions:
    """What every group needs besides its events: establishments, ranked ads, rule.

    Small (a few thousand rows): pickled into the stateful operator and shipped once to
    every Python worker, where the establishment index is built on first use.
    """

    establishments: pd.DataFrame
    ranked: pd.DataFrame
    tz: str
    params: RecommendParams
    #: pandas dtype of establishment_id and ad_id in the dataset (output keeps them)
    id_dtypes: dict[str, str] = field(default_factory=dict)
    _places: PlaceIndex | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_places"] = None  # rebuilt where used (cheap), never pickled
        return state

    @property
    def places(self) -> PlaceIndex:
        """The establishments with an ad, indexed for the approach radius."""
        if self._places is None:
            from adanalytics.engines.pandas.recommendations import approach_places

            self._places = approach_places(self.establishments, self.ranked["establishment_id"],
                                           self.params.approach_radius_m)
        return self._places


def load_dimensions(data: str | Any, *, tz: str, params: RecommendParams,
                    storage_options: dict[str, Any] | None = None) -> Dimensions:
    """Read and validate the dimension tables and the CTR ranking of a dataset.

    Campaigns, ads, establishments and interactions are read (the locations table is not:
    positions come from the stream) and validated through
    :func:`adanalytics.open_dataset` (pandas engine), exactly as a batch run would.
    ``data`` may be a directory or a dict of tables.
    """
    import adanalytics as aa
    from adanalytics import schema
    from adanalytics.engines.pandas.recommendations import ad_counts, ranked_ads

    if isinstance(data, dict):
        tables = dict(data)
    else:
        from adanalytics import io

        sources = io.locate_tables(str(data), storage_options)
        tables = {t: io.read_pandas(src, storage_options) for t, src in sources.items()
                  if t != "locations"}
    tables["locations"] = pd.DataFrame({c: pd.Series(dtype=object)
                                        for c in schema.columns("locations")})
    ds = aa.open_dataset(tables, engine="pandas", tz=tz)
    t = ds.tables
    ranked = ranked_ads(t.ads, t.campaigns, ad_counts(t.interactions))
    est = t.establishments[["establishment_id", "name", "category", "lat", "lon"]].reset_index(drop=True)
    dtypes = {"establishment_id": str(est["establishment_id"].dtype),
              "ad_id": str(t.ads["ad_id"].dtype)}
    return Dimensions(establishments=est, ranked=ranked, tz=tz, params=params, id_dtypes=dtypes)


# --- state ------------------------------------------------------------------------------
def _empty_users() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series(dtype=object), "ts": pd.Series(dtype="datetime64[ns, UTC]"),
        "lat": pd.Series(dtype=np.float64), "lon": pd.Series(dtype=np.float64),
        "seen_ms": pd.Series(dtype=np.int64),
    })


def _empty_suggestions(est_dtype: Any = object) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series(dtype=object), "establishment_id": pd.Series(dtype=est_dtype),
        "ts": pd.Series(dtype="datetime64[ns, UTC]"),
    })


@dataclass
class GroupState:
    """The state of one group: ``users`` (user_id, ts, lat, lon, seen_ms) and
    ``suggestions`` (user_id, establishment_id, ts)."""

    users: pd.DataFrame = field(default_factory=_empty_users)
    suggestions: pd.DataFrame = field(default_factory=_empty_suggestions)

    def to_value(self) -> tuple[bytes, bytes]:
        """The binary state value (two Arrow IPC streams)."""
        return _to_ipc(self.users), _to_ipc(self.suggestions)

    @classmethod
    def from_value(cls, value: tuple[Any, ...] | None) -> GroupState:
        """Read a state value (``None``: a group seen for the first time)."""
        if value is None:
            return cls()
        return cls(users=_from_ipc(value[0]), suggestions=_from_ipc(value[1]))

    @property
    def empty(self) -> bool:
        return self.users.empty and self.suggestions.empty


def _to_ipc(df: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes | bytearray | memoryview) -> pd.DataFrame:
    import pyarrow as pa

    with pa.ipc.open_stream(pa.py_buffer(bytes(data))) as reader:
        return reader.read_all().to_pandas()


def _ns(ts: pd.Series) -> np.ndarray:
    """UTC instants as int64 ns."""
    if not len(ts):
        return np.zeros(0, np.int64)
    return np.asarray(ts.astype("datetime64[ns, UTC]").array.asi8, dtype=np.int64)


# --- the step ---------------------------------------------------------------------------
@dataclass
class StepResult:
    """What a group emits for one micro-batch."""

    output: pd.DataFrame
    state: GroupState
    events: int
    late: int
    suggestions: int


def late_mask(user: np.ndarray, ts_ns: np.ndarray, prior_ts_ns: np.ndarray) -> np.ndarray:
    """Events (in arrival order) older than an earlier-arrived event of the same user, or
    than the user's last accepted event (``prior_ts_ns``; ``_NONE`` where there is none)."""
    if len(user) == 0:
        return np.zeros(0, dtype=bool)
    u = pd.Series(user)
    running = pd.Series(ts_ns).groupby(u, sort=False).cummax()
    before = running.groupby(u, sort=False).shift(1, fill_value=_NONE).to_numpy(np.int64)
    return ts_ns < np.maximum(before, prior_ts_ns)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: int) -> np.ndarray:
    """``values[keys == q]`` for each query (``missing`` where absent); int64."""
    pos = pd.Index(keys).get_indexer(query)
    out = np.full(len(query), missing, dtype=np.int64)
    hit = pos >= 0
    out[hit] = values[pos[hit]]
    return out


def step(events: pd.DataFrame, state: GroupState, dims: Dimensions, *, now_ms: int,
         ttl_ms: int | None) -> StepResult:
    """Apply the rule to a group's new positions after its state.

    Parameters
    ----------
    events:
        Valid positions: entry_ms, entry_seq, user_id, lat, lon, ts_ms (any order; they
        are taken in stream order).
    state:
        The group's state before these events.
    dims:
        Establishments, ranked ads, tz and rule parameters.
    now_ms:
        Processing time of the micro-batch (Spark's batch timestamp: the same when a batch
        is replayed), for the idle TTL.
    ttl_ms:
        Forget users not seen for this long (processing time); ``None``: never.
    """
    ev = events.sort_values(["entry_ms", "entry_seq"], kind="mergesort").reset_index(drop=True)
    users = ev["user_id"].to_numpy(dtype=object)
    ts_ns = ev["ts_ms"].to_numpy(np.int64) * 1_000_000
    prior = state.users
    prior_users = prior["user_id"].to_numpy(dtype=object)
    prior_ts = _lookup(prior_users, _ns(prior["ts"]), users, _NONE)
    late = late_mask(users, ts_ns, prior_ts)
    ok = ev[~late]
    n_late = int(late.sum())

    rows = _empty_rows()
    suggestions = state.suggestions
    last_event = prior[["user_id", "ts", "lat", "lon"]]
    if len(ok):
        rec_events = pd.DataFrame({
            "user_id": ok["user_id"].to_numpy(dtype=object),
            "lat": ok["lat"].to_numpy(np.float64),
            "lon": ok["lon"].to_numpy(np.float64),
            "ts": pd.to_datetime(ok["ts_ms"].to_numpy(np.int64), unit="ms", utc=True),
        })
        res = recommend(rec_events, dims.places, dims.ranked, tz=dims.tz, params=dims.params,
                        state=RecommenderState(last_event=last_event, last_suggestion=suggestions))
        last_event, suggestions = res.state.last_event, res.state.last_suggestion
        if len(res.rows):
            rows = _suggestion_rows(res.rows, ok)

    # seen (processing time) refreshed for every user with an event, late ones included
    kept = last_event["user_id"].to_numpy(dtype=object)
    seen_ms = _lookup(prior_users, prior["seen_ms"].to_numpy(np.int64), kept, now_ms)
    seen_ms[pd.Index(users).unique().get_indexer(kept) >= 0] = now_ms
    new_users = last_event.reset_index(drop=True).assign(seen_ms=seen_ms)
    if ttl_ms is not None:
        new_users = new_users[new_users["seen_ms"] >= now_ms - ttl_ms]
    new_users = new_users.reset_index(drop=True)
    new_state = GroupState(users=new_users, suggestions=_prune_suggestions(
        suggestions, new_users, dims.params.cooldown))
    last = f"{ev['entry_ms'].iat[-1]}-{ev['entry_seq'].iat[-1]}" if len(ev) else None
    return StepResult(output=_with_stats(rows, len(ev), n_late, last), state=new_state,
                      events=len(ev), late=n_late, suggestions=len(rows))


def _prune_suggestions(sugg: pd.DataFrame, users: pd.DataFrame,
                       cooldown: pd.Timedelta) -> pd.DataFrame:
    """Drop suggestions of forgotten users and those that can no longer block one (older
    than the user's last event minus the cooldown: every later event is past it)."""
    if sugg.empty:
        return sugg.reset_index(drop=True)
    last_ts = _lookup(users["user_id"].to_numpy(dtype=object), _ns(users["ts"]),
                      sugg["user_id"].to_numpy(dtype=object), _NONE)
    known = last_ts != _NONE
    keep = known & (_ns(sugg["ts"]) > np.where(known, last_ts, 0) - cooldown.value)
    return sugg[keep].reset_index(drop=True)


def _suggestion_rows(rows: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Suggestions with the id of the position that triggered them (the last-arrived event
    of the user at that ts) and their own deterministic output id ``ms-(seq*1024+j)``."""
    src = pd.DataFrame({
        "user_id": ok["user_id"].to_numpy(dtype=object),
        "ts": pd.to_datetime(ok["ts_ms"].to_numpy(np.int64), unit="ms", utc=True),
        "entry_ms": ok["entry_ms"].to_numpy(np.int64),
        "entry_seq": ok["entry_seq"].to_numpy(np.int64),
    }).drop_duplicates(["user_id", "ts"], keep="last")
    out = rows.assign(user_id=rows["user_id"].astype(str)).merge(src, on=["user_id", "ts"], how="left")
    out["establishment_id"] = out["establishment_id"].astype(str)
    out["ad_id"] = out["ad_id"].astype(str)
    out = out.sort_values(["entry_ms", "entry_seq", "establishment_id"], kind="mergesort")
    j = out.groupby(["entry_ms", "entry_seq"], sort=False).cumcount().to_numpy(np.int64)
    if len(j) and j.max() >= MAX_PER_ENTRY:
        msg = f"one position triggered more than {MAX_PER_ENTRY} suggestions"
        raise ValueError(msg)
    ms = out["entry_ms"].to_numpy(np.int64)
    seq = out["entry_seq"].to_numpy(np.int64)
    out["source_id"] = [f"{a}-{b}" for a, b in zip(ms, seq, strict=True)]
    out["entry_id"] = [f"{a}-{b * MAX_PER_ENTRY + c}" for a, b, c in zip(ms, seq, j, strict=True)]
    out["kind"] = "suggestion"
    return out.reindex(columns=list(OUTPUT_COLUMNS)).reset_index(drop=True)


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "ts" else object)
                         for c in OUTPUT_COLUMNS})


def _with_stats(rows: pd.DataFrame, events: int, late: int, last_id: str | None) -> pd.DataFrame:
    """``rows`` plus the group's stats row (kind ``stats``: events and late counts, and
    the id of the group's newest position in ``entry_id``)."""
    n = len(rows)
    cols: dict[str, Any] = {}
    for c in OUTPUT_COLUMNS:
        tail: Any = {"kind": "stats", "events": events, "late": late, "entry_id": last_id}.get(c)
        cols[c] = [*rows[c].tolist(), tail] if n else [tail]
    return _typed(pd.DataFrame(cols))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Column types of :data:`OUTPUT_DDL` (nullable where a kind leaves a column empty)."""
    out = df.reindex(columns=list(OUTPUT_COLUMNS))
    cols: dict[str, Any] = {}
    for c in OUTPUT_COLUMNS:
        if c in _TEXT:
            text = out[c].to_numpy(dtype=object, copy=True)
            text[pd.isna(text)] = None
            cols[c] = text
        elif c == "ts":
            cols[c] = pd.to_datetime(out["ts"], utc=True)
        elif c == "distance_m":
            cols[c] = pd.to_numeric(out[c]).astype(np.float64)
        else:  # events, late
            cols[c] = pd.to_numeric(out[c]).astype("Int64")
    return pd.DataFrame(cols, index=out.index)


def dead_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Output rows of dead letters (entry_id = the dead position's own id)."""
    ev = events.sort_values(["entry_ms", "entry_seq"], kind="mergesort")
    out = _empty_rows().reindex(range(len(ev)))
    out["kind"] = "dead"
    out["entry_id"] = ev["entry_id"].to_numpy(dtype=object)
    out["source_id"] = ev["entry_id"].to_numpy(dtype=object)
    for c in ("rule", "reason", "original"):
        out[c] = ev[c].to_numpy(dtype=object)
    return _typed(out)
