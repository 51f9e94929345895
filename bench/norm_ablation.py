"""Why LayerNorm: validation loss per epoch with BatchNorm (paper) vs LayerNorm, one SMD machine.

    python bench/norm_ablation.py --data ../shared/data/SMD --machine machine-1-2 --epochs 6

Reads nominal training data only; no test labels are involved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.data import load_smd  # noqa: E402
from model_training.train import TrainConfig, train  # noqa: E402


def main(
    data: Annotated[Path, typer.Option()] = Path("../shared/data/SMD"),
    machine: str = "machine-1-2",
    epochs: int = 6,
) -> None:
    entity = load_smd(data, [machine])[0]
    variants = {
        "batch (paper)": {"norm": "batch"},
        "batch, eps=1e-2": {"norm": "batch", "norm_eps": 1e-2},
        "layer": {"norm": "layer"},
    }
    rows = {}
    for name, kw in variants.items():
        cfg = TrainConfig(epochs=epochs, progress=False, **kw)  # type: ignore[arg-type]
        rows[name] = [h["val_loss"] for h in train(entity.train, cfg).history]
    print(f"validation MSE per epoch, {machine} ({epochs} epochs, d=128, df=5, lr=1e-3)")
    print("| norm | " + " | ".join(f"epoch {i}" for i in range(epochs)) + " |")
    print("|---" * (epochs + 1) + "|")
    for name, losses in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.4g}" for v in losses) + " |")


if __name__ == "__main__":
    typer.run(main)
