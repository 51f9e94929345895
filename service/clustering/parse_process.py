"""Clustering inputs are parsed in a short-lived, memory-capped process, never in the service's.

Why (issue 25, measured on the service before): a 30 MB `.ts` line of 15 M values took 64 s
and 3.0 GB of service memory to refuse; a 15 MiB JSON body held the event loop's GIL so a
one-point POST waited 4.7 s (orjson and pydantic hold the GIL: `to_thread` does not help).
Now the service only

1. keeps the upload where the multipart parser spooled it (a temporary file past 1 MB) and
   copies it to its own temporary file in chunks;
2. counts, in chunks of 1 MiB, what a `.ts` file declares: data lines (≤ N limit) and values
   per line (≤ T·D limits) — a refusal in milliseconds, nothing materialised;
3. hands the file to `python -m service.clustering.parse_process`, which runs the same
   parsers (`service.clustering.uploads`, `inputs`) under RLIMIT_DATA =
   TAD_CLUSTERING_MAX_MEMORY_MB at low priority, and writes the [N, T, D] float32 array back
   in the job input's own format (`work.encode_input`, no pickle) or the refusal as JSON;
   at most `PARSERS` at once, each ended after TAD_CLUSTERING_PARSE_TIMEOUT_S.

Inputs up to TAD_CLUSTERING_PARSE_IN_PROCESS_BYTES (256 KiB) are parsed in a thread as before:
~10 ms, where a process start costs ~0.5 s. A refusal keeps its status, field and kind, so a
client sees the same 413/422 either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import orjson

from service.clustering.inputs import JobInput, UploadLimits
from service.errors import BadRequest, InvalidPoint, ServiceError, TooLarge, Unavailable

CHUNK_BYTES = 1 << 20
PARSERS = 2  # parse processes at once per service process
CHILD_NICE = 10
_ERRORS: dict[str, type[ServiceError]] = {
    "BadRequest": BadRequest,
    "InvalidPoint": InvalidPoint,
    "TooLarge": TooLarge,
}


class StreamsRequest(Exception):
    """The JSON body asks for streams' alarm episodes: the service reads those itself."""


def spool(source: IO[bytes], directory: str | None = None) -> Path:
    """Copy an uploaded file (or body) to a temporary file of our own, 1 MiB at a time."""
    fd, name = tempfile.mkstemp(prefix="tad-upload-", dir=directory)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK_BYTES)
    return Path(name)


def count_ts_unless_zip(path: Path, limits: UploadLimits) -> None:
    """`count_ts` for anything that is not a zip archive (an `.npz` checks its own headers)."""
    with path.open("rb") as fh:
        if fh.read(4) == b"PK\x03\x04":
            return
    count_ts(path, limits)


def count_ts(path: Path, limits: UploadLimits) -> None:
    """Refuse a `.ts` file whose data lines or values per line pass the limits, counting in
    chunks at C speed (bytes.count; nothing parsed, one chunk in memory).

    A data line holds D dimensions of T values (`v,v,…:v,v,…[:label]`), so its separators
    number at most T·D; a line starting `@` or `#`, or empty, is not data.
    """
    max_seps = limits.max_t * limits.max_d  # T·D values and a class label
    lines, carry, last = 0, 0, b"\n"  # the first line starts like any other
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            text = last + chunk  # a line start is a newline and the byte after it
            lines += len(_DATA_START.findall(text))
            if lines > limits.max_n:
                raise TooLarge(
                    f"more than {limits.max_n} series (TAD_CLUSTERING_MAX_N)", field="file"
                )
            seps = _separators(chunk)
            if carry + seps > max_seps:  # some line may be too long: look line by line
                parts = chunk.split(b"\n")
                for i, part in enumerate(parts):
                    n = _separators(part) + (carry if i == 0 else 0)
                    if n > max_seps:
                        raise TooLarge(
                            f"a line of the data holds more than {max_seps + 1} values; the limit "
                            f"is T·D = {limits.max_t}·{limits.max_d} (TAD_CLUSTERING_MAX_T, "
                            "TAD_CLUSTERING_MAX_D)",
                            field="file",
                        )
                carry = n if len(parts) == 1 else _separators(parts[-1])
            else:
                tail = chunk.rsplit(b"\n", 1)
                carry = carry + seps if len(tail) == 1 else _separators(tail[1])
            last = chunk[-1:]


_DATA_START = re.compile(rb"\n[^@#\n\r]")  # a newline, then a byte that starts a data line


def _separators(text: bytes) -> int:
    return text.count(b",") + text.count(b":")


async def parse_isolated(
    source: str,
    path: Path,
    fields: dict[str, Any],
    limits: UploadLimits,
    timeout_s: float,
    gate: asyncio.Semaphore,
) -> JobInput:
    """Parse a spooled upload (`source` "upload") or JSON body ("json") in a child process."""
    out = path.with_suffix(".parsed")
    spec = {"source": source, "input": str(path), "output": str(out), "fields": fields}
    spec["limits"] = asdict(limits)
    async with gate:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.clustering.parse_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(orjson.dumps(spec)), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TooLarge(
                f"parsing took over {timeout_s:g} s (TAD_CLUSTERING_PARSE_TIMEOUT_S)", field="file"
            ) from None
    try:
        return _outcome(stdout, stderr, proc.returncode, out)
    finally:
        out.unlink(missing_ok=True)


def _outcome(stdout: bytes, stderr: bytes, code: int | None, out: Path) -> JobInput:
    from service.clustering.schemas import EMTCOptions
    from service.clustering.work import decode_input

    try:
        answer = orjson.loads(stdout.strip().splitlines()[-1])
    except (IndexError, orjson.JSONDecodeError):
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
        raise Unavailable(f"the input parser failed: {tail[0][:300]}", field="file") from None
    if answer.get("streams"):
        raise StreamsRequest
    if "error" in answer:
        e = answer["error"]
        raise _ERRORS.get(e["class"], InvalidPoint)(e["message"], field=e["field"], kind=e["kind"])
    x, labels = decode_input(out.read_bytes())
    meta = answer["job"]
    return JobInput(
        x,
        labels,
        meta["n_clusters"],
        EMTCOptions.model_validate(meta["options"]),
        meta["source"],
        meta["resampled"],
        meta["filename"],
        method=meta["method"],
    )


def _child_main() -> None:
    """The parse process: read the spec on stdin, answer one JSON line on stdout."""
    import resource

    spec = orjson.loads(sys.stdin.buffer.read())
    limits = UploadLimits(**spec["limits"])
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    cap = limits.max_memory_mb << 20
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    from service.clustering.inputs import from_json, parse_request
    from service.clustering.uploads import from_upload
    from service.clustering.work import encode_input

    f = spec["fields"]
    try:
        data = Path(spec["input"]).read_bytes()
        if spec["source"] == "json":
            req = parse_request(data, limits)
            if req.series is None and req.streams is not None:
                sys.stdout.buffer.write(orjson.dumps({"streams": True}) + b"\n")
                return
            job = from_json(req, limits)
        else:
            job = from_upload(
                data, f["filename"], f["n_clusters"], f["options"], limits, f["method"]
            )
        del data
        Path(spec["output"]).write_bytes(encode_input(job.x, job.labels))
        answer: dict[str, Any] = {
            "job": {
                "n_clusters": job.n_clusters,
                "options": job.options.model_dump(exclude_none=True),
                "source": job.source,
                "resampled": job.resampled,
                "filename": job.filename,
                "method": job.method,
            }
        }
    except ServiceError as exc:
        answer = {"error": _error(exc)}
    except MemoryError:
        answer = {
            "error": {
                "class": "TooLarge",
                "message": f"parsing the input needs more than {limits.max_memory_mb} MB "
                "(TAD_CLUSTERING_MAX_MEMORY_MB)",
                "field": "file" if spec["source"] != "json" else "series",
                "kind": "too_large",
            }
        }
    sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")


def _error(exc: ServiceError) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "message": exc.message,
        "field": exc.field,
        "kind": exc.kind,
    }


if __name__ == "__main__":
    _child_main()
