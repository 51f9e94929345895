"""Keep what a client can trigger out of the error log.

uvicorn logs two client-caused events as errors with a traceback: a WebSocket text frame that is
not UTF-8 (it closes the socket with 1007, which is the whole answer), and requests still
waiting for a slow client's body when a graceful shutdown runs out of time (cancelled). Neither
is a fault of the service, and a client could fill the log with them; they become one-line
warnings. Everything else passes unchanged.
"""

from __future__ import annotations

import asyncio
import logging

_INVALID_UTF8 = "Invalid UTF-8 sequence received from client."


class QuietClientErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.msg == _INVALID_UTF8:
            record.msg = "WebSocket text frame is not UTF-8; closed with 1007"
        elif isinstance(exc, asyncio.CancelledError):
            record.msg = "request cancelled at shutdown (a client was still sending)"
        else:
            return True
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_errors() -> None:
    """Install the filter on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietClientErrors) for f in logger.filters):
        logger.addFilter(QuietClientErrors())
