"""`tad train` and `tad evaluate`: thin command-line wrappers over train/export/evaluate.

torch, pandas and scikit-learn are imported inside the commands, so `tad --help` and the
service import this module without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from model_training.bundle_names import bundle_dir_name
from model_training.calibrate import CalibrationRule

if TYPE_CHECKING:
    from model_training.data import DatasetKind, Entity

__all__ = ["bundle_dir_name", "evaluate", "load_entities", "train"]

DataOpt = Annotated[Path, typer.Option("--data", help="dataset root, or the file for --kind table")]
KindOpt = Annotated[str, typer.Option("--kind", help="smd | smap | msl | nab | table")]
EntityOpt = Annotated[
    list[str] | None, typer.Option("--entity", help="entities to use (default: all)")
]


TimeColOpt = Annotated[
    str,
    typer.Option(
        "--timestamp-column",
        help="--kind table: time column, ISO 8601 or unix seconds ('auto': the first of "
        "timestamp, time, datetime, date, ts; 'none': rows only)",
    ),
]
LabelColOpt = Annotated[
    str,
    typer.Option(
        "--label-column",
        help="--kind table: 0/1 label column, never a channel; its anomalous rows are never "
        "trained on ('auto': label, is_anomaly or anomaly if present; 'none')",
    ),
]
ChannelsOpt = Annotated[
    str | None,
    typer.Option(
        "--channels",
        help="--kind table: comma-separated channel columns (default: "
        "every numeric column but time and label)",
    ),
]
DropOpt = Annotated[
    str | None,
    typer.Option("--drop-channels", help="--kind table: comma-separated columns to skip"),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--train-until",
        help="--kind table: the nominal period ends before this time (ISO 8601 or unix "
        "seconds); default: the whole file without labels, or up to the first labelled anomaly",
    ),
]
TrainDataOpt = Annotated[
    Path | None,
    typer.Option("--train-data", help="--kind table: a separate file of nominal data to train on"),
]


def _none(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def table_options(
    timestamp_column: str = "auto",
    label_column: str = "auto",
    channels: str | None = None,
    drop_channels: str | None = None,
    train_until: str | None = None,
    train_data: Path | None = None,
) -> dict[str, Any]:
    """Keyword arguments of `load_table` from the command-line options."""
    return {
        "timestamp_column": _none(timestamp_column),
        "label_column": _none(label_column),
        "channels": _names(channels),
        "drop_channels": _names(drop_channels) or (),
        "train_until": train_until,
        "train_path": train_data,
    }


def load_entities(
    kind: str, data: Path, entities: list[str] | None, table: dict[str, Any] | None = None
) -> list[Entity]:
    from model_training.data import load_dataset

    kinds = ("smd", "smap", "msl", "nab", "table")
    if kind not in kinds:
        raise typer.BadParameter(
            f"must be one of {', '.join(kinds)}, not {kind!r}", param_hint="--kind"
        )
    loaded = load_dataset(
        cast("DatasetKind", kind), data, **(table or {}) if kind == "table" else {}
    )
    if entities:
        missing = set(entities) - {e.name for e in loaded}
        if missing:
            raise typer.BadParameter(
                f"not in the dataset: {', '.join(sorted(missing))}", param_hint="--entity"
            )
        loaded = [e for e in loaded if e.name in entities]
    return loaded


def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="models directory; one bundle per entity")],
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    timestamp_column: TimeColOpt = "auto",
    label_column: LabelColOpt = "auto",
    channels: ChannelsOpt = None,
    drop_channels: DropOpt = None,
    train_until: UntilOpt = None,
    train_data: TrainDataOpt = None,
    epochs: Annotated[
        int, typer.Option(help="at most this many epochs; the stopping rule usually ends sooner")
    ] = 30,
    patience: Annotated[
        int, typer.Option(help="stop after this many epochs without a better criterion")
    ] = 3,
    select: Annotated[
        str,
        typer.Option(help="epoch criterion: synthetic (fault separation, label-free) | val_loss"),
    ] = "synthetic",
    score: Annotated[
        str,
        typer.Option(
            help="auto (per entity: the candidate that separates injected faults best) | "
            "hybrid (model error + PCA residual) | pca | distance | mse (the paper's)"
        ),
    ] = "auto",
    d_model: int = 128,
    expansion: int = 5,
    dropout: Annotated[float, typer.Option(help="dropout after embedding and in the mixer")] = 0.0,
    lr: float = 1e-3,
    n_clusters: Annotated[int | None, typer.Option(help="M; default: by silhouette")] = None,
    norm: Annotated[str, typer.Option(help="layer | batch (the paper's)")] = "layer",
    alpha: Annotated[
        float, typer.Option(help="significance level of one point's evidence")
    ] = CalibrationRule.alpha,
    false_alarms_per_10k: Annotated[
        float,
        typer.Option(help="alarm budget: expected false alarms per 10,000 nominal points"),
    ] = CalibrationRule.false_alarms_per_10k,
    min_alarm_points: Annotated[
        float, typer.Option(help="h is at least this many points of the largest evidence")
    ] = CalibrationRule.min_alarm_points,
    adapt_points: Annotated[
        int, typer.Option(help="drift adaptation horizon in points (0: off)")
    ] = CalibrationRule.adapt_points,
    search: Annotated[
        int, typer.Option(help="optuna trials over lr, d, df, M on the label-free criterion")
    ] = 0,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
) -> None:
    """Train one CCM-TAD bundle per entity on its nominal (training) data."""
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    scores = ("auto", "hybrid", "pca", "distance", "mse")
    if score not in scores:
        raise typer.BadParameter(
            f"must be one of {', '.join(scores)}, not {score!r}", param_hint="--score"
        )
    if not false_alarms_per_10k > 0:
        raise typer.BadParameter(
            f"must be > 0, not {false_alarms_per_10k}", param_hint="--false-alarms-per-10k"
        )
    if select not in ("synthetic", "val_loss"):
        raise typer.BadParameter(
            f"must be synthetic or val_loss, not {select!r}", param_hint="--select"
        )
    cfg = TrainConfig(
        epochs=epochs,
        patience=patience,
        select=select,
        score=score,  # type: ignore[arg-type]  # checked above
        d_model=d_model,
        expansion=expansion,
        dropout=dropout,
        lr=lr,
        n_clusters=n_clusters,
        norm=norm,
        alpha=alpha,
        false_alarms_per_10k=false_alarms_per_10k,
        min_alarm_points=min_alarm_points,
        adapt_points=adapt_points,
        seed=seed,
        device=device,
        threads=threads,
    )
    table = table_options(
        timestamp_column, label_column, channels, drop_channels, train_until, train_data
    )
    for ent in load_entities(kind, data, entity, table):
        path = out / bundle_dir_name(ent.name)
        if kind == "table":
            typer.echo(
                f"{ent.name}: training on {len(ent.train)} nominal rows, channels "
                f"{', '.join(ent.channel_names)}; the last {cfg.val_fraction:.0%} of them "
                "calibrate the alarms"
            )
        if search > 0:
            from model_training.search import search_config

            cfg = search_config(ent.train, cfg, search)
        train_and_export(ent.train, list(ent.channel_names), path, cfg, ent.name)
        manifest = json.loads((path / "manifest.json").read_text())
        t = manifest["training"]
        for note in t.get("warnings", []):
            typer.echo(f"warning: {ent.name}: {note}", err=True)
        typer.echo(train_summary(ent.name, path, manifest))


def train_summary(name: str, path: Path, manifest: dict[str, Any]) -> str:
    """What `tad train` prints per bundle: the epoch, the score chosen and why, the channel
    types and the alarm threshold with the budget it was set for."""
    t, alarm, score = manifest["training"], manifest["alarm"], manifest["score"]
    aucs = score.get("selection", {}).get("fault_auc", {})
    why = ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
    types = manifest.get("channel_types", {})
    lines = [
        f"{name}: bundle {path} (epoch {t['best_epoch'] + 1} of {len(t['history'])} kept, "
        f"{t['train_seconds']:.0f} s, {t['n_validation']} validation points)",
        f"  score: {score['kind']}" + (f" (injected-fault AUC: {why})" if len(aucs) > 1 else ""),
        f"  alarm: h={alarm['threshold']:.2f} for ≤ {alarm.get('false_alarms_per_10k', 1):g} "
        f"false alarms per 10,000 nominal points (validation {alarm.get('h_validation', 0):.2f}, "
        f"chance {alarm.get('h_null', 0):.2f}, floor {alarm.get('h_floor', 0):.2f})",
    ]
    for key, what in (("constant", "constant in training"), ("status", "status/flag (≤ 3 levels)")):
        names = types.get(key) or []
        if names:
            more = f", … ({len(names)} in all; manifest.json lists them)" if len(names) > 8 else ""
            lines.append(f"  {what}: {', '.join(names[:8])}{more}")
    return "\n".join(lines)


def evaluate(
    data: DataOpt,
    bundles: Annotated[Path, typer.Option("--bundles", help="models directory from tad train")],
    out: Annotated[Path, typer.Option("--out", help="report directory")] = Path("runs/eval"),
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    timestamp_column: TimeColOpt = "auto",
    label_column: LabelColOpt = "auto",
    channels: ChannelsOpt = None,
    drop_channels: DropOpt = None,
    train_until: UntilOpt = None,
    train_data: TrainDataOpt = None,
    plots: bool = True,
) -> None:
    """Run bundles over labelled test data through the online core, with the baselines fitted
    on the same nominal period; write JSON, markdown and PNG. For --kind table the whole
    labelled file is scored (give the same table options as to tad train)."""
    from model_training.evaluate import evaluate_entities, write_report

    table = table_options(
        timestamp_column, label_column, channels, drop_channels, train_until, train_data
    )
    ents = load_entities(kind, data, entity, table)
    unlabelled = [e.name for e in ents if e.test is None or e.test_labels is None]
    if unlabelled:
        raise typer.BadParameter(
            f"{', '.join(unlabelled)} has no labelled test data (a label column with 0/1, or "
            "name it with --label-column)",
            param_hint="--data",
        )
    report = evaluate_entities(ents, bundles, out if plots else None)
    write_report(report, out)
    typer.echo((out / "report.md").read_text())
