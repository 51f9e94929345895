"""Which topics the service subscribes to, and which stream a topic's readings belong to.

A route is an MQTT topic filter whose levels may be named: `plant/{stream_id}/readings`
subscribes to `plant/+/readings` and gives topic `plant/pump-7/readings` the stream id
`pump-7`. Other names (`{site}/{machine}/data`) are joined into the stream id by a template
(`TAD_MQTT_STREAM_ID`, default `{stream_id}`; e.g. `{site}.{machine}`; a filter with a level
named `{stream_id}` uses that level as it is), and a level named
`{model}` picks the model of a stream created by its first message. A plain `+` or a final `#`
matches without naming anything.

>>> route = TopicRoute.parse("plant/{stream_id}/readings")
>>> route.subscription
'plant/+/readings'
>>> route.match("plant/pump-7/readings")
('pump-7', None)
>>> route.match("plant/pump-7/status") is None
True
>>> TopicRoute.parse("{site}/{machine}/#", "{site}.{machine}").match("a/b/x/y")
('a.b', None)
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from service.errors import InvalidPoint
from service.schemas import STREAM_ID_PATTERN

_NAMED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STREAM_ID = re.compile(STREAM_ID_PATTERN)


class TopicConfigError(ValueError):
    """A topic filter or stream id template that cannot work; the message says why."""


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """One subscribed filter: its MQTT form and the names of its levels."""

    template: str
    subscription: str  # the filter sent to the broker: named levels become `+`
    names: tuple[str | None, ...]  # per level: the name, or None (a literal, `+` or `#`)
    stream_id_template: str

    @classmethod
    def parse(cls, template: str, stream_id_template: str = "{stream_id}") -> TopicRoute:
        levels = template.split("/")
        if not template or any(c in template for c in "\0"):
            raise TopicConfigError(f"topic filter {template!r} is empty or has a NUL")
        names: list[str | None] = []
        out: list[str] = []
        for i, level in enumerate(levels):
            named = _NAMED.fullmatch(level)
            if named:
                names.append(named.group(1))
                out.append("+")
            elif level == "#" and i != len(levels) - 1:
                raise TopicConfigError(f"topic filter {template!r}: '#' must be the last level")
            elif level not in ("+", "#") and any(c in level for c in "+#{}"):
                raise TopicConfigError(
                    f"topic filter {template!r}: level {level!r} mixes a wildcard or a name "
                    "with text; a level is text, '+', '#' or one {name}"
                )
            else:
                names.append(None)
                out.append(level)
        if "stream_id" in names:  # a level named {stream_id} is the stream id as it is
            stream_id_template = "{stream_id}"
        needed = {f for _, f, _, _ in string.Formatter().parse(stream_id_template) if f}
        missing = needed - {n for n in names if n}
        if not needed:
            raise TopicConfigError(
                f"stream id template {stream_id_template!r} names no topic level"
            )
        if missing:
            raise TopicConfigError(
                f"topic filter {template!r} has no level named {sorted(missing)} that the "
                f"stream id template {stream_id_template!r} uses"
            )
        return cls(template, "/".join(out), tuple(names), stream_id_template)

    def match(self, topic: str) -> tuple[str, str | None] | None:
        """(stream id, model or None) when `topic` matches this filter, else None."""
        levels = topic.split("/")
        pattern = self.subscription.split("/")
        if pattern[-1] == "#":
            if len(levels) < len(pattern) - 1:
                return None
        elif len(levels) != len(pattern):
            return None
        found: dict[str, str] = {}
        for want, got, name in zip(pattern, levels, self.names, strict=False):
            if want == "#":
                break
            if want != "+" and want != got:
                return None
            if name is not None:
                found[name] = got
        return self.stream_id_template.format(**found), found.get("model")


@dataclass(frozen=True, slots=True)
class TopicMap:
    """All routes; the first that matches a topic names its stream."""

    routes: tuple[TopicRoute, ...]

    @classmethod
    def parse(cls, templates: Sequence[str], stream_id_template: str) -> TopicMap:
        if not templates:
            raise TopicConfigError("no topic filter given (TAD_MQTT_TOPICS)")
        return cls(tuple(TopicRoute.parse(t, stream_id_template) for t in templates))

    def stream_for(self, topic: str) -> tuple[str, str | None]:
        """(stream id, model) of a received topic; InvalidPoint(kind="topic") when no route
        gives it a valid stream id."""
        for route in self.routes:
            hit = route.match(topic)
            if hit is None:
                continue
            if not _STREAM_ID.fullmatch(hit[0]):
                raise InvalidPoint(
                    f"topic {topic!r} gives stream id {hit[0]!r}, which is not a valid stream id",
                    field="topic",
                    kind="topic",
                )
            return hit
        raise InvalidPoint(f"topic {topic!r} matches no route", field="topic", kind="topic")
