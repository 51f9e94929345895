"""The alarm event has one definition (detector.alarm.AlarmEvent): the JSON the service writes
and the schema it documents are both derived from it and cannot drift apart."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
from pydantic import TypeAdapter

from detector.alarm import EVENT_FIELDS, AlarmEvent
from service.ingest.result_json import event_dict
from service.schemas import AlarmEventOut
from tests.support.results import EVENT_KEYS

CLOSED = AlarmEvent(
    "closed", "pump-7", 2, 90, 90.0, 40, 40.0, 31, 31.0, 88, 88.0, 17.5, ("a",), "evidence"
)


def test_json_fields_are_the_core_fields_plus_the_model() -> None:
    model = cast(Any, SimpleNamespace(name="demo", version="v1"))
    body = orjson.loads(orjson.dumps(event_dict(CLOSED, model)))
    assert set(body) == {*EVENT_FIELDS, "model", "model_version"}
    assert set(body) == set(AlarmEventOut.__pydantic_fields__)
    assert TypeAdapter(AlarmEventOut).validate_python(body).offset_index == 88
    assert body["top_channels"] == ["a"] and body["model_version"] == "v1"


def test_an_open_event_has_no_offset() -> None:
    opened = AlarmEvent("opened", "s", 1, 5, 5.0, 5, 5.0, 2, 2.0, None, None, 3.0, ("b", "a"), None)
    body = opened.as_json()
    assert body["offset_index"] is None and body["offset_ts"] is None
    assert list(body) == list(EVENT_FIELDS)


def test_the_compared_fields_are_core_fields() -> None:
    assert set(EVENT_KEYS) <= set(EVENT_FIELDS)


def test_the_replay_client_says_why_an_alarm_closed() -> None:
    from service.replay import describe

    body = CLOSED.as_json()
    assert "re-baselined" not in describe(body)
    auto = describe(body | {"closed_by": "rebaseline"})
    assert auto.startswith("ALARM CLOSED  pump-7 #2") and "re-baselined itself" in auto
    assert "another model" in describe(body | {"closed_by": "model_switch"})
