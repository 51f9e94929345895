"""A large multipart clustering upload, split into its fields and a spooled file, off the loop.

Starlette's form parser runs on the event loop: a 30 MB upload held one-point POSTs up to
~23 ms (3× their idle p99, `bench/clustering_submissions.py`). For bodies over
TAD_CLUSTERING_PARSE_IN_PROCESS_BYTES the route hands the already-read body to `spool_form` in
a worker thread instead: python-multipart's parser (the one Starlette uses) with callbacks
that write the `file` part straight to a temporary file and keep the few small text fields.
Pure-Python parsing in a thread gives the loop the GIL every switch interval (5 ms).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import BadRequest, InvalidPoint

if TYPE_CHECKING:  # a typing-only name in python-multipart
    from python_multipart.multipart import MultipartCallbacks

CHUNK_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 << 10  # n_clusters, method, options: text fields, never large
TEXT_FIELDS = ("n_clusters", "options", "method")
MAX_PARTS = 5  # as the small path's request.form(max_fields=5)


@dataclass(frozen=True)
class SpooledForm:
    fields: dict[str, str]  # the text fields
    filename: str | None
    path: Path  # the `file` part, written to a temporary file


class _Writer:
    """python-multipart callbacks: the `file` part to a temporary file, text fields kept."""

    def __init__(self, directory: str | None) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.path: Path | None = None
        self.directory = directory
        self.parts = 0
        self.headers: dict[bytes, bytes] = {}
        self.header = [b"", b""]
        self.name = ""
        self.out: IO[bytes] | None = None
        self.buf: bytearray | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self.name, self.out, self.buf = {}, "", None, None
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(f"more than {MAX_PARTS} form parts", field="body")

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header[0] += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.header[1] += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header[0].lower()] = self.header[1]
        self.header = [b"", b""]

    def headers_finished(self) -> None:
        _, opts = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = opts.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in opts:
            self.buf = bytearray()
            return
        if self.name in TEXT_FIELDS:
            raise InvalidPoint(f"'{self.name}' must be a plain form field", field=self.name)
        if self.name != "file":
            raise InvalidPoint("upload the data as the form field 'file'", field="file")
        if self.path is not None:
            raise InvalidPoint("upload one file, as the form field 'file'", field="file")
        self.filename = opts[b"filename"].decode("utf-8", "replace")
        fd, tmp = tempfile.mkstemp(prefix="tad-upload-", dir=self.directory)
        self.path = Path(tmp)
        self.out = os.fdopen(fd, "wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.out is not None:
            self.out.write(data[start:end])
        elif self.buf is not None:
            self.buf += data[start:end]
            if len(self.buf) > MAX_FIELD_BYTES:
                raise InvalidPoint(f"form field over {MAX_FIELD_BYTES} bytes", field=self.name)

    def part_end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
        elif self.buf is not None:
            self.fields[self.name] = self.buf.decode("utf-8", "replace")

    def discard(self) -> None:
        if self.out is not None:
            self.out.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def spool_form(body: bytes, content_type: str, directory: str | None = None) -> SpooledForm:
    """Fields and the spooled `file` part of a multipart body (raises BadRequest or
    InvalidPoint naming the part; the caller removes `path`)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("a multipart body needs a boundary", field="Content-Type")
    writer = _Writer(directory)
    parser = MultipartParser(boundary, writer.callbacks())
    try:
        view = memoryview(body)
        for lo in range(0, len(body), CHUNK_BYTES):
            parser.write(bytes(view[lo : lo + CHUNK_BYTES]))
        parser.finalize()
    except (BadRequest, InvalidPoint):
        writer.discard()
        raise
    except Exception as exc:  # python-multipart's own parse errors
        writer.discard()
        raise BadRequest(f"broken multipart form: {exc}", field="body", kind="malformed") from None
    if writer.path is None:
        raise InvalidPoint("upload the data as the form field 'file'", field="file")
    return SpooledForm(writer.fields, writer.filename, writer.path)
