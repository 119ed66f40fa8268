"""Replay a locations table into a Redis stream (``adanalytics stream produce``).

Positions are sent in time order (ts, then lat, lon, user_id - so each user's events come
in the order the batch rule takes them), as entries ``user_id, lat, lon, ts`` (epoch ms),
with Redis-assigned ids (the append time), pipelined in small batches:

- ``rate=N``: N events per second, evenly paced;
- ``speedup=X``: event time runs X times faster than the wall clock (a gap of 60 s
  between two positions becomes 60/X s);
- neither: as fast as Redis takes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adanalytics.engines.pandas import timebuckets as tb

if TYPE_CHECKING:
    import redis

#: Entries per round trip.
CHUNK = 500
#: Append many positions in one call (ARGV: maxlen or "", then user_id, lat, lon, ts per
#: entry); returns the first and last ids. One request instead of one per entry.
_XADD_LUA = """
local key, maxlen = KEYS[1], ARGV[1]
local first, last
for i = 2, #ARGV, 4 do
  if maxlen ~= '' then
    last = redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'user_id', ARGV[i], 'lat', ARGV[i + 1], 'lon', ARGV[i + 2], 'ts', ARGV[i + 3])
  else
    last = redis.call('XADD', key, '*', 'user_id', ARGV[i], 'lat', ARGV[i + 1], 'lon', ARGV[i + 2], 'ts', ARGV[i + 3])
  end
  if not first then first = last end
end
return {first, last}
"""


@dataclass
class ProduceReport:
    """What a replay sent."""

    sent: int
    seconds: float
    first_id: str | None
    last_id: str | None

    @property
    def rate(self) -> float:
        """Achieved events per second."""
        return self.sent / self.seconds if self.seconds > 0 else float("inf")


def positions_frame(locations: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The locations as messages in replay order: user_id, lat, lon, ts_ms (ts floored to
    whole milliseconds, the resolution of a message)."""
    ts_ms = tb.epoch_ns(locations["ts"]) // 1_000_000
    df = pd.DataFrame({
        "user_id": locations["user_id"].astype(str).to_numpy(dtype=object),
        "lat": locations["lat"].to_numpy(np.float64),
        "lon": locations["lon"].to_numpy(np.float64),
        "ts_ms": ts_ms.astype(np.int64),
    })
    df = df.sort_values(["ts_ms", "lat", "lon", "user_id"], kind="mergesort").reset_index(drop=True)
    return df.iloc[:limit] if limit is not None else df


def _flat(df: pd.DataFrame) -> list[str]:
    """user_id, lat, lon, ts of every position, flattened (floats as ``repr``)."""
    out: list[str] = [""] * (4 * len(df))
    out[0::4] = [str(u) for u in df["user_id"].tolist()]
    out[1::4] = [repr(x) for x in df["lat"].tolist()]
    out[2::4] = [repr(x) for x in df["lon"].tolist()]
    out[3::4] = [str(x) for x in df["ts_ms"].tolist()]
    return out


def produce(positions: pd.DataFrame, client: redis.Redis, stream: str = "positions", *,
            rate: float | None = None, speedup: float | None = None,
            maxlen: int | None = None, chunk: int = CHUNK,
            on_progress: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ProduceReport:
    """Append ``positions`` (see :func:`positions_frame`) to ``stream``.

    Parameters
    ----------
    positions:
        user_id, lat, lon, ts_ms in the order to send.
    client:
        A redis-py client.
    rate, speedup:
        Pacing (at most one): events per second, or event-time speed-up factor.
    maxlen:
        Trim the stream to about this many entries (``XADD MAXLEN ~``); beware that a
        job behind by more than that loses data (it fails, unless told otherwise).
    on_progress:
        Called with the number of events sent so far, after every round trip.
    should_stop:
        Polled between round trips; ``True`` ends the replay early.
    """
    if rate is not None and speedup is not None:
        msg = "give rate or speedup, not both"
        raise ValueError(msg)
    if (rate is not None and not rate > 0) or (speedup is not None and not speedup > 0):
        msg = f"rate and speedup must be positive, got rate={rate!r} speedup={speedup!r}"
        raise ValueError(msg)
    n = len(positions)
    flat = _flat(positions)
    script = client.register_script(_XADD_LUA)
    if speedup is not None:
        ts = positions["ts_ms"].to_numpy(np.int64)
        due = (ts - (ts[0] if n else 0)) / 1000.0 / speedup
    elif rate is not None:
        due = np.arange(n, dtype=np.float64) / rate
    else:
        due = None
    first_id = last_id = None
    sent = 0
    t0 = time.monotonic()
    while sent < n:
        if should_stop is not None and should_stop():
            break
        hi = min(n, sent + chunk)
        if due is not None:
            elapsed = time.monotonic() - t0
            ready = int(np.searchsorted(due, elapsed, side="right"))
            if ready <= sent:
                time.sleep(min(0.05, max(0.0005, float(due[sent]) - elapsed)))
                continue
            hi = min(hi, ready)
        ids = script(keys=[stream], args=[str(maxlen or ""), *flat[4 * sent:4 * hi]])
        if first_id is None:
            first_id = _text(ids[0])
        last_id = _text(ids[1])
        sent = hi
        if on_progress is not None:
            on_progress(sent)
    return ProduceReport(sent=sent, seconds=time.monotonic() - t0, first_id=first_id,
                         last_id=last_id)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def produce_dataset(data: str, redis_url: str, stream: str = "positions", *,
                    rate: float | None = None, speedup: float | None = None,
                    limit: int | None = None, maxlen: int | None = None, tz: str | None = None,
                    on_start: Callable[[int], None] | None = None,
                    on_progress: Callable[[int], None] | None = None) -> ProduceReport:
    """Replay the locations of the dataset at ``data`` (validated through
    :func:`adanalytics.open_dataset`, pandas engine) into ``stream``."""
    import redis

    import adanalytics as aa
    from adanalytics.semantics import DEFAULT_TZ

    ds = aa.open_dataset(data, engine="pandas", tz=tz or DEFAULT_TZ)
    positions = positions_frame(ds.tables.locations, limit)
    if on_start is not None:
        on_start(len(positions))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.ping()
        return produce(positions, client, stream, rate=rate, speedup=speedup, maxlen=maxlen,
                       on_progress=on_progress)
    finally:
        client.close()
