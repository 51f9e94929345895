"""WebSocket ingest: `/v1/streams/{id}/ws` for one stream, `/v1/ws` multiplexed.

A message is JSON text: on a stream socket one point, a list of points or `{"points": [...]}`;
on the multiplexed socket the `POST /v1/points` body. Each message is answered (with the same
body as the HTTP route) before the next one is read, so results come back in order and a fast
sender is slowed by TCP backpressure instead of filling an unbounded queue.

Refusals close the socket after an `{"error": ...}` frame: 1003 binary frame, 1007 invalid data
(malformed JSON, bad point, out of order), 1008 policy (API key, unknown stream/model,
conflict), 1009 message too big, 1013 store unavailable (retry). Everything answered before the
close was persisted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from service.auth import check_connection
from service.deps import ServicesDep
from service.errors import (
    WS_INTERNAL,
    WS_UNSUPPORTED,
    BadRequest,
    InvalidPoint,
    ServiceError,
    TooLarge,
    Unavailable,
)
from service.ingest.pipeline import PointBatch
from service.ingest.wire import batch_points, load_message, stream_points
from service.schemas import STREAM_ID_PATTERN
from service.state.store import StoreUnavailable

log = logging.getLogger(__name__)
router = APIRouter()
_STREAM_ID = re.compile(STREAM_ID_PATTERN)

Parser = Callable[[Any], tuple[list[PointBatch], bool]]  # → batches, multiplexed reply


def stream_parser(stream_id: str) -> Parser:
    def parse(raw: Any) -> tuple[list[PointBatch], bool]:
        if isinstance(raw, list):
            raw = {"points": raw}
        elif isinstance(raw, dict) and "points" not in raw:
            raw = {"points": [raw]}
        model, cols = stream_points(raw, is_json=False)
        return [PointBatch(stream_id, model, cols)], False

    return parse


def batch_parser(raw: Any) -> tuple[list[PointBatch], bool]:
    return [
        PointBatch(sid, model, cols, field)
        for sid, model, cols, field in batch_points(raw, is_json=False)
    ], True


async def _refuse(ws: WebSocket, err: ServiceError, code: int | None = None) -> None:
    try:
        await ws.send_text(orjson.dumps(err.body()).decode())
        await ws.close(code or err.ws_code, err.close_reason())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is already gone


async def _serve(
    ws: WebSocket, services: ServicesDep, parse: Parser, stream_id: str | None = None
) -> None:
    await ws.accept()
    try:
        who = check_connection(ws, allow_query=True, need="ingest")
        if stream_id is not None:
            who.require_stream(stream_id)
    except ServiceError as err:
        await _refuse(ws, err)
        return
    limit = services.settings.max_ws_message_bytes
    metrics = services.metrics
    metrics.ws_connections.inc()
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            text = msg.get("text")
            if text is None:
                binary = BadRequest(
                    "binary frames are not supported; send JSON text", kind="malformed"
                )
                metrics.reject("malformed")
                return await _refuse(ws, binary, WS_UNSUPPORTED)
            if len(text) > limit // 4 and len(text.encode()) > limit:
                metrics.reject("too_large")
                return await _refuse(ws, TooLarge(f"message larger than {limit} bytes"))
            try:
                batches, multiplexed = parse(load_message(text))
                for i, b in enumerate(batches):  # a tenant key writes its own streams only
                    who.require_stream(b.stream_id, f"streams[{i}].stream_id")
                results = await services.ingestor.ingest(batches)
            except ServiceError as err:
                if err.kind == "malformed":
                    metrics.reject("malformed")
                return await _refuse(ws, err)
            except StoreUnavailable as exc:
                metrics.store_errors.inc()
                return await _refuse(ws, Unavailable(f"state store unavailable ({exc}); retry"))
            except Exception:
                log.exception("websocket message failed")
                return await _refuse(
                    ws, ServiceError("internal error", kind="internal"), WS_INTERNAL
                )
            reply = {"results": results} if multiplexed else results[0]
            await ws.send_text(orjson.dumps(reply).decode())
    except (WebSocketDisconnect, OSError):
        return
    finally:
        metrics.ws_connections.dec()


@router.websocket("/v1/streams/{stream_id}/ws")
async def stream_socket(ws: WebSocket, stream_id: str, services: ServicesDep) -> None:
    if not _STREAM_ID.fullmatch(stream_id):
        await ws.accept()
        await _refuse(ws, InvalidPoint("invalid stream id", field="stream_id"), 1008)
        return
    await _serve(ws, services, stream_parser(stream_id), stream_id)


@router.websocket("/v1/ws")
async def multiplexed_socket(ws: WebSocket, services: ServicesDep) -> None:
    await _serve(ws, services, batch_parser)
