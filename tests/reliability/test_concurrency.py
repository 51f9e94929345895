"""Many concurrent streams on one process with Redis: every one is answered, none is refused for
lack of a Redis connection (redis-py's default pool of 100 used to answer the 101st concurrent
request with 503; bench/soak.py found it with 1,000 streams)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from tests.support.processes import ServerProcess

STREAMS = 400


async def burst(ws_base: str, rounds: int) -> list[dict[str, Any]]:
    async def one(i: int, ws: Any) -> list[dict[str, Any]]:
        replies = []
        for seq in range(rounds):
            await ws.send(orjson.dumps({"seq": seq, "values": [0.1, 0.2, 0.3, 0.4 + i]}).decode())
            replies.append(orjson.loads(await ws.recv()))
        return replies

    sockets = [
        await connect(f"{ws_base}/v1/streams/c-{i}/ws", open_timeout=30) for i in range(STREAMS)
    ]
    try:  # every socket sends at the same moment
        results = await asyncio.gather(*(one(i, ws) for i, ws in enumerate(sockets)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return [r for rs in results for r in rs]


def test_hundreds_of_concurrent_streams_are_all_answered(
    model_dir: Path, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_REDIS_URL": redis_url,
        "TAD_REDIS_PREFIX": redis_prefix,
    }
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    try:
        replies = asyncio.run(burst(server.ws, rounds=2))
    finally:
        server.stop()
    errors = [r["error"] for r in replies if "error" in r]
    assert not errors, errors[:3]
    assert len(replies) == 2 * STREAMS and all(r["accepted"] == 1 for r in replies)
