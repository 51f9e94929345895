"""An MQTT message's payload → the points of one stream, in the forms gateways publish.

Accepted (JSON text, UTF-8):

- the WebSocket forms: one point `{"timestamp": t, "values": [...] | {...}}` (or `"seq"`), a
  list of points, or `{"points": [...], "model": ...}`;
- a flat reading, as PLC bridges and Node-RED flows send it: `{"ts": t, "temperature": 21.5,
  "pressure": 1.2}` — the clock under `ts`, `timestamp`, `time` or `seq`, every other key a
  channel by name (or a list of such readings);
- Telegraf's JSON output: `{"name": ..., "tags": {...}, "fields": {...}, "timestamp": t}`
  (the fields are the channels; name and tags are ignored).

The clock is required: it is how a message the broker delivers again after a crash is
recognised as a duplicate. Anything else raises the same `ServiceError` the HTTP route would,
naming the field.

>>> model, cols = decode(b'{"ts": 10, "temperature": 1.5, "pressure": 2}')
>>> cols.times.tolist(), cols.rows
([10.0], [{'temperature': 1.5, 'pressure': 2}])
>>> decode(b'[{"timestamp": 1, "values": [1, 2]}, {"timestamp": 2, "values": [3, 4]}]')[1].rows
[[1, 2], [3, 4]]
>>> decode(b'{"temperature": 1}')
Traceback (most recent call last):
...
service.errors.InvalidPoint: a flat reading needs its clock under one of 'ts', 'timestamp', \
'time' or 'seq'
"""

from __future__ import annotations

from typing import Any

from service.errors import BadRequest, InvalidPoint
from service.ingest.wire import PointColumns, load_message, stream_points

FLAT_CLOCKS = ("ts", "timestamp", "time")
_NO_CLOCK = "a flat reading needs its clock under one of 'ts', 'timestamp', 'time' or 'seq'"


def decode(payload: bytes) -> tuple[str | None, PointColumns]:
    """(model named in the payload or None, the points); raise ServiceError when malformed."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise BadRequest("payload is not UTF-8 JSON", field="payload", kind="malformed") from None
    raw = load_message(text)
    if isinstance(raw, dict) and "points" in raw:
        return stream_points(raw, is_json=False)
    items = raw if isinstance(raw, list) else [raw]
    return stream_points({"points": [_point(p, i) for i, p in enumerate(items)]}, is_json=False)


def _point(item: Any, i: int) -> Any:
    """One element in the WebSocket point form (validated afterwards, with the route's rules)."""
    if not isinstance(item, dict) or "values" in item:
        return item
    if "fields" in item and isinstance(item["fields"], dict):  # Telegraf's JSON serializer
        return {"timestamp": item.get("timestamp"), "values": item["fields"]}
    clock = "seq" if "seq" in item else next((k for k in FLAT_CLOCKS if k in item), "")
    if not clock:
        raise InvalidPoint(_NO_CLOCK, field=f"points[{i}]", kind="malformed")
    values = {k: v for k, v in item.items() if k != clock}
    return {"seq" if clock == "seq" else "timestamp": item[clock], "values": values}
