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

DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        help="dataset root; for --kind table a file, a folder of files or a glob ('runs/*.csv')",
    ),
]
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
        help="--kind table: 0/1 label column(s), comma-separated, never channels; a row is "
        "anomalous when any is 1 and is never trained on ('auto': every column named like a "
        "label: label, anomaly, is_anomaly, changepoint, fault…, attack, target…; 'none')",
    ),
]
SepOpt = Annotated[
    str | None,
    typer.Option("--sep", help="--kind table: CSV separator (default: sniffed among , ; tab |)"),
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
    sep: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments of `load_table` from the command-line options."""
    if sep is not None and (len(sep.encode()) != 1 and sep not in ("\\t", "tab")):
        raise typer.BadParameter(f"one character, not {sep!r}", param_hint="--sep")
    return {
        "timestamp_column": _none(timestamp_column),
        "label_column": _none(label_column),
        "channels": _names(channels),
        "drop_channels": _names(drop_channels) or (),
        "train_until": train_until,
        "train_path": train_data,
        "sep": "\t" if sep in ("\\t", "tab") else sep,
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
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="dataset root; for --kind table a file, a folder of files or a glob "
            "('runs/*.csv')",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="models directory; one bundle per entity")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="a running service: train there on the recorded history of --stream into a "
            "new version of model --name, and follow the job (no --data, --out)"
        ),
    ] = None,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", help="--url: a stream to train on")
    ] = None,
    start: Annotated[
        float | None, typer.Option("--from", help="--url: first timestamp (unix seconds)")
    ] = None,
    end: Annotated[
        float | None, typer.Option("--to", help="--url: end timestamp (exclusive)")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TAD_API_KEY", help="--url: an admin key")
    ] = None,
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    timestamp_column: TimeColOpt = "auto",
    label_column: LabelColOpt = "auto",
    channels: ChannelsOpt = None,
    drop_channels: DropOpt = None,
    train_until: UntilOpt = None,
    train_data: TrainDataOpt = None,
    sep: SepOpt = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="--kind table, one file: the bundle's name (default: the file's stem; with "
            "several files, the stem plus as many folders as tell equal stems apart)"
        ),
    ] = None,
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
            help="hybrid (model error + PCA residual) | pca (the residual alone) | distance "
            "(from the training mean) | mse (the paper's) | auto (per entity, the one that "
            "separates injected faults best)"
        ),
    ] = "hybrid",
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
    max_alarm_points: Annotated[
        float,
        typer.Option(
            help="h from the validation period is at most this many points of the largest "
            "evidence: a sustained gross fault alarms that soon (0: no cap)"
        ),
    ] = CalibrationRule.max_alarm_points,
    adapt_points: Annotated[
        int, typer.Option(help="drift adaptation horizon in points (0: off)")
    ] = CalibrationRule.adapt_points,
    median_points: Annotated[
        int,
        typer.Option(
            min=1,
            max=512,
            help="the evidence reads the running median of this many scores (1: the raw score)",
        ),
    ] = CalibrationRule.median_points,
    rebaseline_after_points: Annotated[
        int,
        typer.Option(
            min=0,
            help="an alarm this long closes and the stream takes its recent scores as its new "
            "normal (0: never)",
        ),
    ] = CalibrationRule.rebaseline_after_points,
    search: Annotated[
        int, typer.Option(help="optuna trials over lr, d, df, M on the label-free criterion")
    ] = 0,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 1,
) -> None:
    """Train one CCM-TAD bundle per entity on its nominal (training) data, or, with --url,
    a new model version on a running service's recorded streams."""
    if url is not None:
        options = {
            "epochs": epochs,
            "patience": patience,
            "d_model": d_model,
            "expansion": expansion,
            "lr": lr,
            "seed": seed,
            "score": score,
            "false_alarms_per_10k": false_alarms_per_10k,
            "median_points": median_points,
            "rebaseline_after_points": rebaseline_after_points,
        }
        table = table_options(
            timestamp_column, label_column, channels, drop_channels, train_until, train_data, sep
        )
        _train_remote(url, name, stream, start, end, api_key, data, out, options, table)
        return
    if data is None:
        raise typer.BadParameter("is required (or --url)", param_hint="--data")
    if out is None:
        raise typer.BadParameter("is required (or --url)", param_hint="--out")
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
        max_alarm_points=max_alarm_points,
        adapt_points=adapt_points,
        median_points=median_points,
        rebaseline_after_points=rebaseline_after_points,
        seed=seed,
        device=device,
        threads=threads,
    )
    table = table_options(
        timestamp_column, label_column, channels, drop_channels, train_until, train_data, sep
    )
    if kind == "table":
        table["name"] = name
    for ent in load_entities(kind, data, entity, table):
        path = out / bundle_dir_name(ent.name)
        if kind == "table":
            labels = (ent.table or {}).get("label_columns") or []
            typer.echo(
                f"{ent.name}: training on {len(ent.train)} nominal rows, channels "
                f"{', '.join(ent.channel_names)}; label column(s): {', '.join(labels) or 'none'};"
                f" the last {cfg.val_fraction:.0%} of the rows calibrate the alarms"
            )
        for note in ent.notes:
            typer.echo(f"note: {ent.name}: {note}", err=True)
        if search > 0:
            from model_training.search import search_config

            cfg = search_config(ent.train, cfg, search)
        train_and_export(ent.train, list(ent.channel_names), path, cfg, ent.name, table=ent.table)
        manifest = json.loads((path / "manifest.json").read_text())
        t = manifest["training"]
        for note in t.get("warnings", []):
            typer.echo(f"warning: {ent.name}: {note}", err=True)
        typer.echo(train_summary(ent.name, path, manifest))


def _train_remote(
    url: str,
    name: str | None,
    streams: list[str] | None,
    start: float | None,
    end: float | None,
    api_key: str | None,
    data: Path | None,
    out: Path | None,
    options: dict[str, Any],
    table: dict[str, Any],
) -> None:
    """`tad train --url`: the job on the service, with this command's training options — on
    its recorded `--stream`s, or on the `--data` file, uploaded and read there."""
    from model_training.remote import RemoteTrainingError, train_remote

    if out is not None:
        raise typer.BadParameter("trains locally; leave it out with --url", param_hint="--out")
    if not name:
        raise typer.BadParameter("names the model to train with --url", param_hint="--name")
    if (data is None) == (not streams):
        raise typer.BadParameter(
            "give --stream (recorded history) or --data (a file to upload) with --url",
            param_hint="--stream",
        )
    if data is not None and (not data.is_file() or table.get("train_path") is not None):
        raise typer.BadParameter(
            "one CSV or Parquet file to upload (no --train-data) with --url", param_hint="--data"
        )
    try:
        if data is not None:
            spec_table = {k: v for k, v in table.items() if k != "train_path"}
            spec_table["drop_channels"] = list(spec_table["drop_channels"])
            job = train_remote(url, name, [], options, api_key=api_key, upload=(data, spec_table))
        else:
            job = train_remote(url, name, list(streams or []), options, start, end, api_key)
    except RemoteTrainingError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from None
    res = job["result"]
    what = f"rows of {data.name}" if data is not None else "recorded points"
    typer.echo(
        f"{res['model']}: version {res['version']} trained on {res['points']} {what} "
        f"at {url} (epoch {int(res['epoch_kept'] or 0) + 1} kept, h={res['threshold']:.2f}); "
        f"served there now: move a stream with PUT /v1/streams/{{id}} "
        f'{{"model": "{res["model"]}"}}'
    )


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
        (
            f"  evidence: running median of {int(alarm['median_points'])} scores; "
            if alarm.get("median_points", 1) > 1
            else "  evidence: the raw score; "
        )
        + (
            f"an alarm of {int(alarm['rebaseline_after_points'])} points re-baselines its stream"
            if alarm.get("rebaseline_after_points")
            else "no automatic re-baseline"
        ),
    ]
    for key, what in (("constant", "constant in training"), ("status", "status/flag (≤ 3 levels)")):
        names = types.get(key) or []
        if names:
            more = f", … ({len(names)} in all; manifest.json lists them)" if len(names) > 8 else ""
            lines.append(f"  {what}: {', '.join(names[:8])}{more}")
    if score.get("context_channels"):
        lines.append(
            f"  {len(score['context_channels'])} context channels: model input, adding at most "
            f"{score['context_cap']:.3g} to a score (the median nominal score of the sensors)"
        )
    return "\n".join(lines)


def evaluate(
    data: DataOpt,
    bundles: Annotated[
        Path, typer.Option("--bundles", help="models directory from tad train")
    ] = Path("models"),
    model: Annotated[
        str | None,
        typer.Option(
            help="evaluate every file against this bundle of --bundles (default: the "
            "bundle trained from each entity, by its name)"
        ),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="evaluate every file against the bundle in this folder")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="report directory")] = Path("runs/eval"),
    kind: KindOpt = "smd",
    entity: EntityOpt = None,
    timestamp_column: TimeColOpt = "auto",
    label_column: LabelColOpt = "auto",
    channels: ChannelsOpt = None,
    drop_channels: DropOpt = None,
    train_until: UntilOpt = None,
    train_data: TrainDataOpt = None,
    sep: SepOpt = None,
    score_all: Annotated[
        bool,
        typer.Option(
            help="--kind table: also score the rows the bundle was trained on (by "
            "default they are left out, as they are no test)"
        ),
    ] = False,
    plots: bool = True,
    points: Annotated[
        bool, typer.Option(help="write points/<entity>.csv: every point's score and alarm")
    ] = True,
) -> None:
    """Run bundles over labelled test data through the online core, with the baselines fitted
    on the same nominal period; write JSON, markdown, per-point CSV and PNG. A table is read
    as its bundle was trained: the bundle's channels (other columns are ignored, with a note),
    separator and time column."""
    if model is not None and bundle is not None:
        raise typer.BadParameter("give --model or --bundle, not both", param_hint="--bundle")
    fixed = bundle if bundle is not None else (bundles / model if model is not None else None)
    if fixed is not None and not (fixed / "manifest.json").is_file():
        hint = "--bundle" if bundle is not None else "--model"
        raise typer.BadParameter(f"no bundle in {fixed} (no manifest.json)", param_hint=hint)
    table = table_options(
        timestamp_column, label_column, channels, drop_channels, train_until, train_data, sep
    )
    from model_training.evaluate import evaluate_entities, write_points, write_report

    if kind == "table":
        ents, paths = _table_entities(data, bundles, fixed, table, score_all)
    else:
        ents = load_entities(kind, data, entity, table)
        paths = {e.name: fixed or bundles / bundle_dir_name(e.name) for e in ents}
    unlabelled = [e.name for e in ents if e.test is None or e.test_labels is None]
    if unlabelled:
        raise typer.BadParameter(
            f"{', '.join(unlabelled)} has no labelled test data (a label column with 0/1, or "
            "name it with --label-column)",
            param_hint="--data",
        )
    for ent in ents:
        for note in ent.notes:
            typer.echo(f"note: {ent.name}: {note}", err=True)
    report = evaluate_entities(ents, bundles, out if plots else None, bundle_paths=paths)
    write_report(report, out)
    if points:
        write_points(report, out / "points")
    typer.echo((out / "report.md").read_text())


def _table_entities(
    data: Path, bundles: Path, fixed: Path | None, table: dict[str, Any], score_all: bool
) -> tuple[list[Entity], dict[str, Path]]:
    """Each file read as its bundle was trained: the bundle's channels, separator and time
    column; the rows the bundle was trained on (same data fingerprint) left out unless
    `score_all`."""
    import dataclasses
    import hashlib

    import numpy as np

    from model_training.data import load_table
    from model_training.data.table import entity_names, table_paths

    files = table_paths(data)
    ents, where = [], {}
    for path, name in zip(files, entity_names(files), strict=True):
        home = fixed or bundles / bundle_dir_name(name)
        try:
            manifest = json.loads((home / "manifest.json").read_text())
        except FileNotFoundError:
            raise typer.BadParameter(
                f"{path}: no bundle {home} (train one named {name!r}, or pick one with "
                "--model NAME or --bundle DIR)",
                param_hint="--data",
            ) from None
        read = dict(table)
        known = manifest.get("table") or {}
        read["channels"] = read["channels"] or list(manifest["channel_names"])
        read["sep"] = read["sep"] or known.get("sep")
        if read["timestamp_column"] == "auto" and "timestamp_column" in known:
            read["timestamp_column"] = known["timestamp_column"]
        ent = load_table(path, name=name, extra_columns="note", **read)
        fingerprint = hashlib.sha256(
            np.ascontiguousarray(np.asarray(ent.train, np.float64)).tobytes()
        ).hexdigest()
        skip = ent.trained_rows_in_test
        trained_here = fingerprint == manifest.get("data_fingerprint")
        if ent.test is not None and skip and not score_all and trained_here:
            ent = dataclasses.replace(
                ent,
                test=ent.test[skip:],
                test_labels=None if ent.test_labels is None else ent.test_labels[skip:],
                test_timestamps=(
                    None if ent.test_timestamps is None else ent.test_timestamps[skip:]
                ),
                notes=(
                    *ent.notes,
                    f"the first {skip} rows trained the bundle and are not scored "
                    "(--score-all scores them)",
                ),
            )
        ents.append(ent)
        where[ent.name] = home
    return ents, where
