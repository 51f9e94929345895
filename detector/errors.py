"""Precise exceptions of the detector core.

The core never decides HTTP status codes or WebSocket close codes; it names the stream, the
field and the offending value, and the edges (service routes, CLI) translate.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error the detector core raises."""


class PointError(DetectorError, ValueError):
    """A point cannot be accepted into a stream."""

    def __init__(self, stream_id: str, field: str, value: object, reason: str) -> None:
        self.stream_id = stream_id
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"stream {stream_id!r}: {field}={value!r}: {reason}")


class ChannelCountError(PointError):
    """The point has the wrong number of channel values."""


class NonFiniteValueError(PointError):
    """A channel value is NaN or infinite."""


class OutOfOrderError(PointError):
    """The point's timestamp is not after the stream's last accepted timestamp."""


class StateFormatError(DetectorError, ValueError):
    """Serialised stream state is corrupt, truncated or of an unknown version."""


class BundleError(DetectorError, ValueError):
    """A model bundle is missing, corrupt, truncated or inconsistent."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"bundle {path}: {reason}")
