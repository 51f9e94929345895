"""The WebSocket ceiling for bench/perf.py: the same uvicorn and WebSocket implementation as the
service, answering each message with a constant reply and doing nothing else.

    python bench/ws_echo.py PORT IMPL
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/v1/streams/{stream_id}/ws")
async def echo(ws: WebSocket, stream_id: str) -> None:
    await ws.accept()
    try:
        while True:
            await ws.receive_text()
            await ws.send_text('{"accepted": 1}')
    except WebSocketDisconnect:
        return


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ws=sys.argv[2], log_level="warning")
