"""Write `tests/model_training/emtc/data/minirocket_reference.npz`: aeon's MiniRocket fitted
parameters and features on a small generated set, which `test_minirocket.py` checks our numpy
transform against.

    pip install aeon && python bench/minirocket_reference.py

aeon is not a dependency of the project (it pulls numba and pins numpy below the version the
project runs); this script is how the committed reference was made, and how to remake it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from aeon.transformations.collection.convolution_based import MiniRocket

OUT = (
    Path(__file__).resolve().parents[1] / "tests/model_training/emtc/data/minirocket_reference.npz"
)


def main() -> None:
    rng = np.random.default_rng(7)
    t = np.linspace(0, 1, 60, dtype=np.float32)
    x = np.stack(  # [N, D, T]: three groups of noisy sines, three channels
        [
            np.stack([np.sin(2 * np.pi * (1 + i % 3) * t + c) for c in range(3)])
            + 0.2 * rng.standard_normal((3, 60))
            for i in range(6)
        ]
    ).astype(np.float32)
    multi = MiniRocket(n_kernels=840, random_state=3).fit(x)
    uni = MiniRocket(n_kernels=840, random_state=3).fit(x[:, :1])
    arrays = {"X": x, "features": multi.transform(x), "features_uni": uni.transform(x[:, :1])}
    names = ("channels_per_combination", "channel_indices", "dilations", "features_per_dilation")
    for prefix, fitted in (("", multi), ("uni_", uni)):
        for name, value in zip((*names, "biases"), fitted.parameters, strict=True):
            arrays[prefix + name] = np.asarray(value)
    np.savez_compressed(OUT, allow_pickle=False, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
