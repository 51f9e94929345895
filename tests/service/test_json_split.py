"""Large JSON bodies are validated in pieces (issue 25): the same result and the same first
error as one validation, with the event loop let in between the pieces."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import BadRequest, InvalidPoint
from service.ingest import wire
from service.ingest.json_split import split_array

# strings without quotes or backslashes (a body holding a backslash is validated whole)
texts = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=("Cs",)))
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4)
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(values, min_size=1, max_size=30),
    st.dictionaries(texts.filter(lambda k: k != "items"), values, max_size=3),
    st.integers(1, 200),
    st.sampled_from([None, 0, 2]),
)
def test_pieces_cover_the_array_exactly(
    items: list[Any], others: dict[str, Any], piece_bytes: int, indent: int | None
) -> None:
    raw = json.dumps({**others, "items": items}, indent=indent).encode()
    split = split_array(raw, b"items", piece_bytes)
    if b"\\" in raw:  # json.dumps escapes some characters: such bodies are validated whole
        assert split is None
        return
    assert split is not None
    got = [x for _, piece in split.pieces for x in orjson.loads(piece)]
    assert got == orjson.loads(raw)["items"]
    firsts = [first for first, _ in split.pieces]
    assert firsts[0] == 0 and firsts == sorted(set(firsts))
    assert orjson.loads(split.skeleton_with_first) == {**others, "items": items[:1]}


@pytest.mark.parametrize(
    "raw",
    [
        b'["items", [1]]',
        b'{"items": 3}',
        b'{"items": []}',
        b'{"items": [1], "items": [2]}',
        b'{"a": {"items": [1]}}',
        b'{"items": [1, "\\"]"]}',
    ],
)
def test_bodies_the_scan_does_not_understand_are_left_whole(raw: bytes) -> None:
    assert split_array(raw, b"items", 4) is None


def batch_body(n_streams: int, n_points: int) -> dict[str, Any]:
    return {
        "streams": [
            {
                "stream_id": f"s-{i}",
                "points": [
                    {"timestamp": float(j), "values": [0.25, -1.5, float(j), 2.0]}
                    for j in range(n_points)
                ],
            }
            for i in range(n_streams)
        ]
    }


def run_counting_loop_turns(coro: Any) -> tuple[Any, int]:
    """Run `coro` beside a task that counts how often the loop gets to run it."""

    async def main() -> tuple[Any, int]:
        turns = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        try:
            return await coro, turns
        finally:
            done.set()
            await ticker

    return asyncio.run(main())


def test_a_large_batch_is_validated_in_pieces_like_one_validation() -> None:
    body = orjson.dumps(batch_body(400, 60))
    assert len(body) > wire.SPLIT_BODY_BYTES
    whole = wire.batch_points(body)
    got, turns = run_counting_loop_turns(wire.batch_points_async(body))
    assert turns >= len(body) // wire.PIECE_BYTES  # the loop ran between the pieces
    assert [(s, m, f) for s, m, _, f in got] == [(s, m, f) for s, m, _, f in whole]
    for (_, _, a, _), (_, _, b, _) in zip(got, whole, strict=True):
        assert a.times.tolist() == b.times.tolist() and a.rows == b.rows


def test_a_large_single_stream_body_is_validated_in_pieces() -> None:
    body = orjson.dumps({"model": "demo", "points": batch_body(1, 30_000)["streams"][0]["points"]})
    assert len(body) > wire.SPLIT_BODY_BYTES
    (model, cols), turns = run_counting_loop_turns(wire.stream_points_async(body))
    assert turns >= len(body) // wire.PIECE_BYTES
    want_model, want = wire.stream_points(body)
    assert model == want_model == "demo"
    assert cols.times.tolist() == want.times.tolist() and cols.rows == want.rows


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: b["streams"][333]["points"][7]["values"].__setitem__(1, "x"),
        lambda b: b["streams"][0]["points"][0].pop("timestamp"),
        lambda b: b["streams"][250].__setitem__("stream_id", "bad id!"),
        lambda b: b.__setitem__("extra", 1),
    ],
)
def test_a_mistake_in_a_piece_is_named_as_one_validation_names_it(spoil: Any) -> None:
    body = batch_body(400, 60)
    spoil(body)
    raw = orjson.dumps(body)
    with pytest.raises((InvalidPoint, BadRequest)) as whole:
        wire.batch_points(raw)
    with pytest.raises((InvalidPoint, BadRequest)) as pieces:
        asyncio.run(wire.batch_points_async(raw))
    assert pieces.value.field == whole.value.field and str(pieces.value) == str(whole.value)


def test_a_large_body_that_is_not_json_is_refused_as_such() -> None:
    raw = orjson.dumps(batch_body(400, 60))
    cut = raw[: len(raw) // 2]
    with pytest.raises(BadRequest) as err:
        asyncio.run(wire.batch_points_async(cut))
    assert err.value.field == "body"
