"""Core results and alarms as the JSON the API promises (see `service.schemas`).

Built as plain dicts and lists for orjson (NaN becomes null), not as pydantic objects: this runs
for every point on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.alarm import AlarmEvent, OpenAlarm, top_channels
from detector.stream import StreamResults
from service.registry import LoadedModel


def event_dict(event: AlarmEvent, model: LoadedModel) -> dict[str, Any]:
    """The core's event as JSON, with the model that raised it (`AlarmEventOut`)."""
    return {**event.as_json(), "model": model.name, "model_version": model.version}


def open_alarm_dict(stream_id: str, alarm: OpenAlarm, model: LoadedModel) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "model": model.name,
        "alarm_id": alarm.alarm_id,
        "trigger_index": alarm.trigger_index,
        "trigger_ts": float(alarm.trigger_ts),
        "onset_index": alarm.onset_index,
        "onset_ts": float(alarm.onset_ts),
        "peak_evidence": float(alarm.peak),
        "top_channels": list(
            top_channels(model.channels, alarm.channel_error_sum, model.bundle.calibration.top_k)
        ),
    }


def results_dict(
    stream_id: str,
    model: LoadedModel,
    status: Sequence[str],
    held: int,
    res: StreamResults | None,
) -> dict[str, Any]:
    """One `PointsResult`; `res` is None when every point was a duplicate."""
    accepted = status.count("accepted")
    head = {
        "stream_id": stream_id,
        "model": model.name,
        "model_version": model.version,
        "status": list(status),
        "accepted": accepted,
        "duplicates": len(status) - accepted,
        "held": held,
    }
    if res is None:
        return head | {k: [] for k in _COLUMNS} | {"events": []}
    head["index"] = res.index.tolist()
    head["timestamp"] = res.timestamp.tolist()
    head["warmup"] = res.warmup.tolist()
    head["score"] = res.score.tolist()
    head["p_value"] = res.p_value.tolist()
    head["evidence"] = res.evidence.tolist()
    head["accumulated"] = res.accumulated.tolist()
    head["alarm"] = res.alarm.tolist()
    head["events"] = [event_dict(e, model) for e in res.events] if res.events else []
    return head


_COLUMNS = ("index", "timestamp", "warmup", "score", "p_value", "evidence", "accumulated", "alarm")
