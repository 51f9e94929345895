"""Model inputs at 64-byte aligned addresses, so a point's reconstruction is exact.

ONNX Runtime's CPU kernels take another code path, which sums in another order, for an input
that is not 64-byte aligned: the same point then gets a reconstruction that differs in its
last bit depending on where numpy happened to allocate its batch (seen as a 1-in-3 flaky
tests/service/test_properties.py), and the service promises the same result however points
are batched. Arrays made for the graphs are allocated aligned; anything else is copied.
"""

from __future__ import annotations

import numpy as np

ALIGN_BYTES = 64


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array of `shape` starting at a 64-byte boundary.

    >>> int(aligned_empty((3, 5)).ctypes.data % ALIGN_BYTES)
    0
    """
    n = int(np.prod(shape)) * 4
    buf = np.empty(n + ALIGN_BYTES, np.uint8)
    start = -buf.ctypes.data % ALIGN_BYTES
    return buf[start : start + n].view(np.float32).reshape(shape)


def aligned(x: np.ndarray) -> np.ndarray:
    """x as C-contiguous float32 at a 64-byte boundary (a copy only where it is not).

    >>> x = aligned(np.arange(6.0).reshape(2, 3))
    >>> int(x.ctypes.data % ALIGN_BYTES), x.dtype.name, x.tolist()
    (0, 'float32', [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    """
    x = np.asarray(x, np.float32)
    if x.flags.c_contiguous and x.ctypes.data % ALIGN_BYTES == 0:
        return x
    out = aligned_empty(x.shape)
    out[...] = x
    return out
