"""Uploaded inputs of a clustering job: an `.npz` (arrays `X`, optional `y`) or a UEA `.ts` file.

An `.npz` is read with `allow_pickle=False`, and each array's header (shape, dtype) is checked
before its data is read, so neither a pickle nor a small archive that would decompress to a
huge array gets through. Every refusal names the form field. These functions block: callers run
them in a thread.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from model_training.emtc.ts_format import TsFormatError, parse_ts_lines
from service.clustering.inputs import (
    JobInput,
    UploadLimits,
    check_common,
    from_validation,
    invalid_value,
    stack_series,
)
from service.clustering.schemas import DEFAULT_METHOD, METHODS, EMTCOptions
from service.errors import TooLarge


def parse_options(text: str | None) -> EMTCOptions:
    if not text:
        return EMTCOptions.model_validate({})
    try:
        return EMTCOptions.model_validate_json(text)
    except ValidationError as exc:
        raise from_validation(exc, "options.") from None


def _npy_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


@dataclass(frozen=True)
class UploadFields:
    """The form fields that come with an uploaded file."""

    n_clusters: int
    options: EMTCOptions
    filename: str | None
    method: str = DEFAULT_METHOD


def from_npz(data: bytes, form: UploadFields, limits: UploadLimits) -> JobInput:
    """An uploaded `.npz`: array `X` [N, T, D] numeric, optional `y` [N] (ints or strings)."""
    n_clusters, opts, filename, method = form.n_clusters, form.options, form.filename, form.method
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise invalid_value("not an .npz archive", "file") from None
    with zf:
        names = set(zf.namelist())
        if "X.npy" not in names:
            raise invalid_value(f"the .npz has no array 'X' (found {sorted(names)[:10]})", "file")
        headers = {}
        for key in ("X", "y"):
            if f"{key}.npy" not in names:
                continue
            try:
                headers[key] = _npy_header(zf, f"{key}.npy")
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                raise invalid_value(f"array {key} is unreadable: {exc}", f"file.{key}") from None
    shape, dtype = headers["X"]
    if dtype.hasobject:
        raise invalid_value("array X holds Python objects (pickle); refused", "file.X", "pickle")
    if len(shape) != 3 or dtype.kind not in "iuf":
        raise invalid_value(f"X must be a numeric [N, T, D] array, got {dtype} {shape}", "file.X")
    n, t, d = shape
    for size, cap, var in ((n, limits.max_n, "N"), (t, limits.max_t, "T"), (d, limits.max_d, "D")):
        if size > cap:
            raise TooLarge(
                f"{var} = {size}; the limit is {cap} (TAD_CLUSTERING_MAX_{var})", field="file.X"
            )
    if n * t * d > limits.max_values:
        raise TooLarge(f"N·T·D = {n * t * d} (TAD_CLUSTERING_MAX_VALUES)", field="file.X")
    if "y" in headers:
        y_shape, y_dtype = headers["y"]
        if y_dtype.hasobject:
            raise invalid_value(
                "array y holds Python objects (pickle); refused", "file.y", "pickle"
            )
        if y_shape != (n,) or y_dtype.kind not in "iuU" or y_dtype.itemsize > 1024:
            raise invalid_value(f"y must be [N] ints or strings, got {y_dtype} {y_shape}", "file.y")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            x = np.asarray(npz["X"], dtype=np.float64)
            y = np.asarray(npz["y"]).astype(str) if "y" in headers else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise invalid_value(f"unreadable .npz: {exc}", "file") from None
    x32, resampled = stack_series(list(x), opts.length, limits, "file.X")
    check_common(x32.shape, n_clusters, y, opts, limits, "file.y", method)
    return JobInput(x32, y, n_clusters, opts, "npz", resampled, filename, method=method)


def from_ts(data: bytes, form: UploadFields, limits: UploadLimits) -> JobInput:
    """An uploaded `.ts` file (sktime/UEA format); `?` missing values are interpolated."""
    n_clusters, opts, filename, method = form.n_clusters, form.options, form.filename, form.method
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_value(f"a .ts file must be UTF-8 text ({exc.reason})", "file") from None
    name = filename or "upload.ts"
    try:
        series, labels, _ = parse_ts_lines(text.splitlines(), name)
    except TsFormatError as exc:
        raise invalid_value(str(exc), "file", "ts_format") from None
    x, resampled = stack_series(series, opts.length, limits, "file")
    y = labels if len(labels) else None
    check_common(x.shape, n_clusters, y, opts, limits, "file", method)
    return JobInput(x, y, n_clusters, opts, "ts", resampled, filename, method=method)


def from_upload(
    data: bytes,
    filename: str | None,
    n_clusters_text: str | None,
    options_text: str | None,
    limits: UploadLimits,
    method_text: str | None = None,
) -> JobInput:
    """A multipart upload: the file's kind from its name (`.npz`, `.ts`), else its bytes."""
    method = method_text or DEFAULT_METHOD
    if method not in METHODS:
        raise invalid_value(f"method must be one of {', '.join(METHODS)}, not {method!r}", "method")
    try:
        n_clusters = int(n_clusters_text or "")
    except ValueError:
        raise invalid_value("n_clusters must be an integer >= 2", "n_clusters") from None
    if n_clusters < 2:
        raise invalid_value("n_clusters must be an integer >= 2", "n_clusters")
    opts = parse_options(options_text)
    name = (filename or "").lower()
    form = UploadFields(n_clusters, opts, filename, method)
    if name.endswith(".npz") or (not name.endswith(".ts") and data[:4] == b"PK\x03\x04"):
        return from_npz(data, form, limits)
    return from_ts(data, form, limits)
