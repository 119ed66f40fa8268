"""The position message contract: stream entries, their ids, validation, dead letters.

A position is one Redis stream entry with the fields ``user_id``, ``lat``, ``lon`` (decimal
degrees) and ``ts`` (epoch milliseconds, UTC); other fields are ignored. An entry that
breaks the contract is *dead*: it goes, with the rule it broke and a readable reason, to
the dead-letter stream and never reaches (or stops) the job. The rules:

``missing_field``
    ``user_id``, ``lat``, ``lon`` or ``ts`` absent or empty.
``bad_encoding``
    a field that is not UTF-8 text.
``non_numeric``
    ``lat`` or ``lon`` not a finite decimal number.
``out_of_range``
    ``lat`` outside [-90, 90] or ``lon`` outside [-180, 180].
``bad_ts``
    ``ts`` not a whole number of epoch milliseconds between 1900 and 2262.

Entry ids are Redis stream ids ``MS-SEQ`` (two unsigned 64-bit integers); they order the
stream and are the offsets of the Spark source.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adanalytics.errors import StreamMessageError

#: The fields of a position message, in order.
FIELDS: tuple[str, ...] = ("user_id", "lat", "lon", "ts")
#: The rules a message can break (the ``rule`` of a dead letter).
RULES: tuple[str, ...] = ("missing_field", "bad_encoding", "non_numeric", "out_of_range", "bad_ts")
#: Accepted range of ``ts`` in epoch milliseconds: 1900-01-01 to pandas' last nanosecond
#: instant (2262-04-11), so every accepted ts is a valid ``datetime64[ns]``.
TS_MIN_MS = -2_208_988_800_000
TS_MAX_MS = 9_223_372_036_854
#: The smallest id a stream can hold is 0-1; "0-0" means "before everything".
ZERO_ID = "0-0"
_U64 = (1 << 64) - 1


@dataclass(frozen=True, order=True)
class EntryId:
    """A Redis stream entry id ``ms-seq`` (ordered like Redis orders them)."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, text: str | bytes | EntryId) -> EntryId:
        """Parse ``"1700000000000-3"`` (or a bare ``"1700000000000"``, seq 0)."""
        if isinstance(text, EntryId):
            return text
        if isinstance(text, bytes):
            text = text.decode()
        ms, sep, seq = str(text).partition("-")
        try:
            out = cls(int(ms), int(seq) if sep else 0)
        except ValueError:
            msg = f"not a stream entry id (MS-SEQ): {text!r}"
            raise ValueError(msg) from None
        if not (0 <= out.ms <= _U64 and 0 <= out.seq <= _U64):
            msg = f"stream entry id out of range: {text!r}"
            raise ValueError(msg)
        return out

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


def id_max(*ids: str | EntryId) -> str:
    """The largest of entry ids, as text."""
    return str(max(EntryId.parse(i) for i in ids))


def id_lt(a: str | EntryId, b: str | EntryId) -> bool:
    """``a < b`` in stream order."""
    return EntryId.parse(a) < EntryId.parse(b)


@dataclass(frozen=True)
class Position:
    """A valid position message."""

    user_id: str
    lat: float
    lon: float
    ts_ms: int


def encode_position(user_id: Any, lat: float, lon: float, ts_ms: int) -> dict[str, str]:
    """The fields of a position entry. Floats are written with ``repr`` (shortest text
    that reads back to the same double), so distances computed from a message are bit for
    bit those computed from the table it was replayed from."""
    return {"user_id": str(user_id), "lat": repr(float(lat)), "lon": repr(float(lon)),
            "ts": str(int(ts_ms))}


def _text(fields: Mapping[Any, Any], name: str) -> str:
    value = fields.get(name)
    if value is None and name.encode() in fields:
        value = fields[name.encode()]
    if value is None:
        raise StreamMessageError("missing_field", f"missing field '{name}'")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise StreamMessageError("bad_encoding", f"field '{name}' is not UTF-8 text") from None
    value = str(value)
    if not value.strip():
        raise StreamMessageError("missing_field", f"empty field '{name}'")
    return value


def _coordinate(fields: Mapping[Any, Any], name: str, limit: float) -> float:
    text = _text(fields, name)
    try:
        x = float(text)
    except ValueError:
        raise StreamMessageError("non_numeric", f"{name} is not a number: {text[:40]!r}") from None
    if not math.isfinite(x):
        raise StreamMessageError("non_numeric", f"{name} is not a finite number: {text[:40]!r}")
    if not -limit <= x <= limit:
        raise StreamMessageError("out_of_range", f"{name} {x!r} outside [-{limit:g}, {limit:g}]")
    return x


def _timestamp(fields: Mapping[Any, Any]) -> int:
    text = _text(fields, "ts").strip()
    try:
        ts = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f == int(f)):
            msg = f"ts is not whole epoch milliseconds: {text[:40]!r}"
            raise StreamMessageError("bad_ts", msg) from None
        ts = int(f)
    if not TS_MIN_MS <= ts <= TS_MAX_MS:
        raise StreamMessageError("bad_ts", f"ts {ts} ms outside the years 1900-2262")
    return ts


def parse_position(fields: Mapping[Any, Any]) -> Position:
    """Validate the fields of one entry.

    Raises
    ------
    StreamMessageError
        With ``.args == (rule, reason)``: the first rule the entry breaks (fields are
        checked in the order user_id, lat, lon, ts).
    """
    user = _text(fields, "user_id")
    lat = _coordinate(fields, "lat", 90.0)
    lon = _coordinate(fields, "lon", 180.0)
    return Position(user, lat, lon, _timestamp(fields))


def original_fields(fields: Mapping[Any, Any]) -> dict[str, str]:
    """The entry's fields as text (undecodable bytes shown with replacement characters)."""
    def s(v: Any) -> str:
        return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)

    return {s(k): s(v) for k, v in fields.items()}


#: Columns of :func:`parse_entries` (the positions schema of the Spark source).
COLUMNS: tuple[str, ...] = ("entry_id", "entry_ms", "entry_seq", "user_id", "lat", "lon",
                            "ts_ms", "rule", "reason", "original")


def parse_entries(entries: Iterable[tuple[Any, Mapping[Any, Any]]]) -> dict[str, list[Any]]:
    """Validate stream entries ``(id, fields)`` into columns (see :data:`COLUMNS`).

    A valid entry has ``rule``/``reason``/``original`` null; a dead one has null
    ``user_id``/``lat``/``lon``/``ts_ms``, the rule it broke, the reason, and its original
    fields as a JSON object.
    """
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    eid, ems, eseq = cols["entry_id"], cols["entry_ms"], cols["entry_seq"]
    us, las, los, tss = cols["user_id"], cols["lat"], cols["lon"], cols["ts_ms"]
    rules, reasons, originals = cols["rule"], cols["reason"], cols["original"]
    for raw_id, fields in entries:
        ident = EntryId.parse(raw_id)
        eid.append(str(ident))
        ems.append(ident.ms)
        eseq.append(ident.seq)
        try:
            p = parse_position(fields)
        except StreamMessageError as exc:
            rule, reason = exc.args
            us.append(None)
            las.append(None)
            los.append(None)
            tss.append(None)
            rules.append(rule)
            reasons.append(reason)
            originals.append(json.dumps(original_fields(fields), ensure_ascii=False))
            continue
        us.append(p.user_id)
        las.append(p.lat)
        los.append(p.lon)
        tss.append(p.ts_ms)
        rules.append(None)
        reasons.append(None)
        originals.append(None)
    return cols


def dead_letter_fields(entry_id: str, rule: str, reason: str, original: str,
                       source: str) -> dict[str, str]:
    """Fields of a dead-letter entry: ``rule``, ``reason``, ``source_stream``,
    ``source_id`` and then the original fields (renamed ``original_NAME`` where a name
    collides with those four)."""
    out = {"rule": rule, "reason": reason, "source_stream": source, "source_id": entry_id}
    for k, v in json.loads(original).items():
        out[f"original_{k}" if k in out else k] = v
    return out


def parse_chunk(entries: list[Any]) -> dict[str, Any]:
    """:func:`parse_entries`, vectorised for the usual case (every entry has exactly the
    fields user_id, lat, lon, ts in that order, as the producer writes them); the other
    entries, and those failing a check, go through :func:`parse_position` one by one, so
    the answers (values, rules, reasons) are exactly those of :func:`parse_entries`.

    ``entries`` are ``[id, [k1, v1, k2, v2, ...]]`` pairs of text (JSON-decoded).
    """
    import numpy as np

    n = len(entries)
    fast = np.zeros(n, dtype=bool)
    users: list[Any] = [None] * n
    lats: list[Any] = ["nan"] * n
    lons: list[Any] = ["nan"] * n
    tss: list[Any] = ["0"] * n
    for i, (_, f) in enumerate(entries):
        if len(f) == 8 and f[0] == "user_id" and f[2] == "lat" and f[4] == "lon" and f[6] == "ts":
            fast[i] = True
            users[i], lats[i], lons[i], tss[i] = f[1], f[3], f[5], f[7]
    try:
        lat = np.array(lats, dtype=object).astype(np.float64)
        lon = np.array(lons, dtype=object).astype(np.float64)
        ts = np.array(tss, dtype=object).astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        cols = parse_entries((e[0], _pairs(e[1])) for e in entries)
        return {k: np.array(v, dtype=object) for k, v in cols.items()}
    with np.errstate(invalid="ignore"):
        ok = (fast & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0)
              & (ts >= TS_MIN_MS) & (ts <= TS_MAX_MS))
    ok &= np.array([bool(u and u.strip()) for u in users], dtype=bool) if n else ok
    # ids as Redis writes them ("ms-seq", canonical): split once, convert in bulk
    text = [e[0] for e in entries]
    parts = np.array([t.split("-") for t in text], dtype=object).reshape(n, 2) if n else np.zeros((0, 2), object)
    out: dict[str, Any] = {
        "entry_id": np.array(text, dtype=object),
        "entry_ms": parts[:, 0].astype(np.int64),
        "entry_seq": parts[:, 1].astype(np.int64),
        "user_id": np.array(users, dtype=object),
        "lat": lat, "lon": lon, "ts_ms": ts,
        "rule": np.full(n, None, dtype=object), "reason": np.full(n, None, dtype=object),
        "original": np.full(n, None, dtype=object), "valid": ok,
    }
    for i in np.flatnonzero(~ok):
        fields = _pairs(entries[i][1])
        try:
            p = parse_position(fields)
        except StreamMessageError as exc:
            out["rule"][i], out["reason"][i] = exc.args
            out["original"][i] = json.dumps(original_fields(fields), ensure_ascii=False)
            out["user_id"][i] = None
            continue
        out["user_id"][i], out["lat"][i], out["lon"][i], out["ts_ms"][i] = p
        out["valid"][i] = True
    return out


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=False))
