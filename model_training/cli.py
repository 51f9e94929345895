"""`tad train` and `tad evaluate`: thin command-line wrappers over train/export/evaluate.

torch is imported inside the commands, so the service can import the CLI without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, cast

import typer

from model_training.data import DatasetKind, Entity, load_dataset

DataOpt = Annotated[Path, typer.Option("--data", help="dataset root, or the file for --kind table")]
KindOpt = Annotated[str, typer.Option("--kind", help="smd | smap | msl | nab | table")]
EntityOpt = Annotated[
    list[str] | None, typer.Option("--entity", help="entities to use (default: all)")
]


def bundle_dir_name(entity: str) -> str:
    """Entity names like 'realKnownCause/nyc_taxi' become safe directory names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", entity)


def load_entities(kind: str, data: Path, entities: list[str] | None) -> list[Entity]:
    kinds = ("smd", "smap", "msl", "nab", "table")
    if kind not in kinds:
        raise typer.BadParameter(f"--kind must be one of {kinds}, not {kind!r}")
    loaded = load_dataset(cast(DatasetKind, kind), data)
    if entities:
        missing = set(entities) - {e.name for e in loaded}
        if missing:
            raise typer.BadParameter(f"--entity: not in the dataset: {sorted(missing)}")
        loaded = [e for e in loaded if e.name in entities]
    return loaded


def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="models directory; one bundle per entity")],
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    epochs: int = 30,
    d_model: int = 128,
    expansion: int = 5,
    lr: float = 1e-3,
    n_clusters: Annotated[int | None, typer.Option(help="M; default: by silhouette")] = None,
    norm: Annotated[str, typer.Option(help="layer | batch (the paper's)")] = "layer",
    alpha: float = 0.01,
    false_alarm_rate: float = 1e-4,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
) -> None:
    """Train one CCM-TAD bundle per entity on its nominal (training) data."""
    from model_training.train import TrainConfig, train_and_export

    cfg = TrainConfig(
        epochs=epochs,
        d_model=d_model,
        expansion=expansion,
        lr=lr,
        n_clusters=n_clusters,
        norm=norm,
        alpha=alpha,
        false_alarm_rate=false_alarm_rate,
        seed=seed,
        device=device,
        threads=threads,
    )
    for ent in load_entities(kind, data, entity):
        path = out / bundle_dir_name(ent.name)
        train_and_export(ent.train, list(ent.channel_names), path, cfg, ent.name)
        manifest = json.loads((path / "manifest.json").read_text())
        typer.echo(
            f"{ent.name}: bundle {path} (best epoch {manifest['training']['best_epoch']}, "
            f"{manifest['training']['train_seconds']:.0f} s, "
            f"h={manifest['alarm']['threshold']:.2f})"
        )


def evaluate(
    data: DataOpt,
    bundles: Annotated[Path, typer.Option("--bundles", help="models directory from tad train")],
    out: Annotated[Path, typer.Option("--out", help="report directory")] = Path("runs/eval"),
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    plots: bool = True,
) -> None:
    """Run bundles over labelled test data through the online core; write JSON, markdown, PNG."""
    from model_training.evaluate import evaluate_entities, write_report

    ents = load_entities(kind, data, entity)
    report = evaluate_entities(ents, bundles, out if plots else None)
    write_report(report, out)
    typer.echo((out / "report.md").read_text())
