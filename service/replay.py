"""`tad replay`: stream recorded data into a running service over WebSocket, printing alarms.

Points are sent in batches at a chosen rate; each batch's answer is awaited before the next is
sent (the service's backpressure). If the connection drops or the service says to try again
(service restarted, store briefly down: close 1013) the client reconnects and resends the
unanswered batch: the service acknowledges what it had already persisted as duplicates, so
nothing is counted twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from detector.columns import (
    AUTO,
    TIME_COLUMNS,
    format_hint,
    label_columns,
    parse_number,
    pick,
    read_head,
    sniff_format,
)

# error frames (before a close 1013) after which the same batch is resent: the state store was
# briefly away, the stream changed too often concurrently, or the client's rate limit was hit
RETRYABLE = frozenset({"unavailable", "contention", "rate_limited"})


class _TryAgain(Exception):
    """The service refused a batch for now (close 1013); reconnect and resend it."""


@dataclass
class ReplayData:
    names: tuple[str, ...]
    values: np.ndarray  # [n, C]
    timestamps: np.ndarray | None  # [n] seconds, or None: sequence numbers 0..n-1


@dataclass
class ReplaySummary:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0


def read_csv(
    path: Path,
    timestamp_column: str | None = AUTO,
    label_column: str | None = AUTO,
    channels: Sequence[str] | None = None,
    drop_channels: Sequence[str] = (),
    sep: str | None = None,
) -> ReplayData:
    """A CSV as `tad train --kind table` reads it (detector.columns): the separator and
    decimal mark sniffed unless given, the time column found by name unless given, every
    label-like column (or the given ones) never sent; channels are the numeric columns (or
    `channels`) less `drop_channels`. Errors name the file, line and column."""
    fmt = sniff_format(read_head(path), sep)
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=fmt.sep) if r]
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            if len(header) == 1:  # most likely the wrong separator: show the header as read
                raise ValueError(format_hint(path, header, fmt))
            raise ValueError(f"{path}: line {line}: {len(r)} fields, the header has {len(header)}")
    t_col = pick(header, timestamp_column, TIME_COLUMNS)
    labels = [c for c in label_columns(header, label_column) if c != t_col]
    for name in [c for c in (t_col, *labels, *(channels or ()), *drop_channels) if c is not None]:
        if name not in header:
            raise ValueError(f"{path}: no column {name!r}; found {', '.join(header)}")
    skip = {t_col, *labels, *drop_channels}
    wanted = list(channels) if channels else [h for h in header if h not in skip]
    names = [
        h
        for h in wanted
        if h not in skip and (channels or _numeric(body, header.index(h), fmt.decimal))
    ]
    if not names:
        raise ValueError(format_hint(path, header, fmt))
    values = np.empty((len(body), len(names)))
    for k, name in enumerate(names):
        j = header.index(name)
        for i, r in enumerate(body):
            cell = r[j].strip()
            try:
                values[i, k] = parse_number(cell, fmt.decimal) if cell else np.nan
            except ValueError:
                raise ValueError(
                    f"{path}: line {i + 2}: column {name!r}: not a number: {cell!r}"
                ) from None
    stamps = None
    if t_col is not None:
        j = header.index(t_col)
        stamps = np.array([_seconds(path, i + 2, t_col, r[j]) for i, r in enumerate(body)])
    return ReplayData(tuple(names), values, stamps)


def model_channels(
    url: str, stream: str, model: str | None, api_key: str | None = None
) -> tuple[str, tuple[str, ...]] | None:
    """(model name, its channels) the stream is or will be scored by, asked of the service:
    the stream's model if it exists, else `model`, else the only serving model; None when the
    service cannot tell (several models and none named) or does not answer."""
    import httpx

    base = re.sub(r"^ws", "http", url.rstrip("/"))
    base = base.split("/v1/", 1)[0]
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            got = client.get(f"/v1/streams/{stream}")
            name = got.json().get("model") if got.status_code == 200 else model
            listed = client.get("/v1/models")
            if listed.status_code != 200:
                return None
            active = [m for m in listed.json().get("models", []) if m.get("active")]
    except (httpx.HTTPError, ValueError):
        return None
    if name is None:
        names = {m["name"] for m in active}
        if len(names) != 1:
            return None
        name = names.pop()
    for m in active:
        if m["name"] == name:
            return str(name), tuple(m["channels"])
    return None


def fit_to_model(data: ReplayData, model: str, channels: Sequence[str]) -> tuple[ReplayData, str]:
    """The data's columns in the model's channel order; other columns left out (the note says
    which); a channel the model needs and the file lacks is a ValueError naming it."""
    missing = [c for c in channels if c not in data.names]
    if missing:
        raise ValueError(
            f"model {model!r} needs channel(s) {', '.join(missing)}, which the file does not "
            f"have (it has {', '.join(data.names)})"
        )
    extra = [c for c in data.names if c not in channels]
    order = [data.names.index(c) for c in channels]
    note = f"not sent (model {model!r} does not use them): {', '.join(extra)}" if extra else ""
    return ReplayData(tuple(channels), data.values[:, order], data.timestamps), note


def _numeric(body: list[list[str]], j: int, decimal: str = ".") -> bool:
    """Most non-empty cells parse as numbers (as the trainer decides which columns are channels)."""
    cells = [r[j].strip() for r in body if r[j].strip()]
    ok = 0
    for c in cells:
        try:
            parse_number(c, decimal)
            ok += 1
        except ValueError:
            pass
    return bool(cells) and ok * 2 > len(cells)


def _seconds(path: Path, line: int, column: str, cell: str) -> float:
    """Unix seconds from a number or an ISO 8601 time (naive = UTC)."""
    text = cell.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{path}: line {line}: column {column!r}: not a time: {cell!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def when(ts: float) -> str:
    """A time as a person reads it: ISO 8601 (UTC) for unix seconds, else the number."""
    if 1e8 < ts < 1e11:  # 1973 … 5138: unix seconds
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")
    return f"{ts:g}"


def socket_url(url: str, stream: str) -> str:
    """Base URL (ws://host:port) → the stream's socket; a full /v1/… URL is used as given."""
    url = url.rstrip("/")
    return url if "/v1/" in url else f"{url}/v1/streams/{stream}/ws"


def describe(event: dict[str, Any]) -> str:
    top = ", ".join(event["top_channels"])
    if event["kind"] == "opened":
        return (
            f"ALARM OPENED  {event['stream_id']} #{event['alarm_id']} at {when(event['at_ts'])} "
            f"(onset {when(event['onset_ts'])}) top channels: {top}"
        )
    why = {
        "rebaseline": " — the stream re-baselined itself after a long alarm: retrain the model?",
        "operator": " — closed by a re-baseline",
        "model_switch": " — the stream moved to another model",
    }.get(event.get("closed_by") or "evidence", "")
    return (
        f"ALARM CLOSED  {event['stream_id']} #{event['alarm_id']} at {when(event['at_ts'])} "
        f"(offset {when(event['offset_ts'])}, peak evidence {event['peak_evidence']:.2f}) "
        f"top channels: {top}{why}"
    )


def _account(summary: ReplaySummary, reply: dict[str, Any], echo: Callable[[str], None]) -> None:
    summary.accepted += reply["accepted"]
    summary.duplicates += reply["duplicates"]
    for event in reply["events"]:
        summary.events.append(event)
        echo(describe(event))


def points_json(data: ReplayData, lo: int, hi: int) -> list[dict[str, Any]]:
    out = []
    for i in range(lo, hi):
        row = [None if not np.isfinite(v) else float(v) for v in data.values[i]]
        clock: dict[str, Any] = (
            {"seq": i} if data.timestamps is None else {"timestamp": float(data.timestamps[i])}
        )
        out.append(clock | {"values": dict(zip(data.names, row, strict=True))})
    return out


def replay(
    url: str,
    stream: str,
    data: ReplayData,
    rate: float = 0.0,
    batch: int = 1,
    model: str | None = None,
    api_key: str | None = None,
    echo: Callable[[str], None] = print,
    retries: int = 10,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> ReplaySummary:
    """Send every point (at `rate` points/s, 0 = as fast as answered); return a summary."""
    headers: Sequence[tuple[str, str]] = [("X-API-Key", api_key)] if api_key else []
    target = socket_url(url, stream)
    summary = ReplaySummary()
    n, lo, failures = len(data.values), 0, 0
    t0 = time.monotonic()
    while lo < n:
        try:
            with connect(target, additional_headers=headers, max_size=None, open_timeout=10) as ws:
                while lo < n:
                    hi = min(lo + batch, n)
                    msg: dict[str, Any] = {"points": points_json(data, lo, hi)}
                    if model:
                        msg["model"] = model
                    ws.send(orjson.dumps(msg).decode())
                    reply = orjson.loads(ws.recv())
                    if "error" in reply:
                        err = reply["error"]
                        if err.get("type") in RETRYABLE:  # nothing of it was acknowledged
                            raise _TryAgain(f"{err.get('type')}: {err.get('message')}")
                        hint = (
                            f" (stream {stream!r} already has later points: replay into a new "
                            f"--stream, or DELETE /v1/streams/{stream} first)"
                            if err.get("type") == "out_of_order"
                            else ""
                        )
                        raise RuntimeError(
                            f"service refused {err.get('field')}: {err.get('message')}{hint}"
                        )
                    failures = 0
                    summary.sent, lo = hi, hi
                    _account(summary, reply, echo)
                    if on_result is not None:
                        on_result(reply)
                    if rate > 0:
                        time.sleep(max(0.0, t0 + hi / rate - time.monotonic()))
        except (ConnectionClosed, OSError, TimeoutError, _TryAgain) as exc:
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            if code in (1003, 1007, 1008, 1009) or failures >= retries:
                reason = getattr(getattr(exc, "rcvd", None), "reason", "") or str(exc)
                raise RuntimeError(f"service closed the stream: {code} {reason}") from exc
            failures += 1  # restarted service or store briefly away: resend from `lo`
            summary.reconnects += 1
            time.sleep(min(0.2 * failures, 2.0))
    return summary
