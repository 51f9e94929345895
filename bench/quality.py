"""The development suite (`make quality`): every labelled dataset, the default and every baseline.

    python bench/quality.py --smd ../shared/data/SMD --msl ../shared/data/MSL --out runs/quality

For each dataset: one bundle per entity with `tad train`'s defaults (reused when OUT/<set>/
bundles/<entity> exists; delete it to retrain), then `tad evaluate` (the online core, the
baselines fitted on the same split and calibrated by the same rule), plus a "flag every point"
row. Writes OUT/<set>/eval/report.{json,md}, OUT/quality.md (one table per dataset, never only
an average) and OUT/quality.json, and prints each of issue 23's targets met or missed per
dataset. Defaults are chosen on all the sets together; each is reported separately.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.bundle_names import bundle_dir_name  # noqa: E402
from model_training.cli import load_entities  # noqa: E402
from model_training.report import methods_table  # noqa: E402

DETECTOR = "ccm-tad"
AS_SENSORS = "hybrid, flags scored as sensors"
TARGET_LF = {"smd": 0.40, "msl": 0.30}


def _train_one(kind: str, data: str, name: str, path: str) -> str:
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    ent = load_entities(kind, Path(data), [name])[0]
    cfg = TrainConfig(progress=False)  # every setting at its default
    train_and_export(ent.train, list(ent.channel_names), Path(path), cfg, ent.name)
    return name


def train_all(kind: str, data: Path, bundles: Path, jobs: int) -> None:
    from tqdm import tqdm

    names = [e.name for e in load_entities(kind, data, None)]
    todo = [n for n in names if not (bundles / bundle_dir_name(n) / "manifest.json").exists()]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(_train_one, kind, str(data), n, str(bundles / bundle_dir_name(n)))
            for n in todo
        ]
        for f in tqdm(futures, desc=f"train {kind}"):
            f.result()


def flag_every_point(kind: str, data: Path) -> dict[str, Any]:
    """Alarm on every test point: the floor any label-free alarm must clear."""
    from model_training.metrics import point_prf

    ents = load_entities(kind, data, None)
    labels = np.concatenate([np.asarray(e.test_labels) for e in ents])
    per = [point_prf(e.test_labels, np.ones(len(e.test_labels))).f1 for e in ents]  # type: ignore[arg-type]
    return {
        "label_free": point_prf(labels, np.ones(len(labels))).as_dict(),
        "mean_entity_f1": float(np.mean(per)),
    }


def window_errors(cal: Any, model: Any, series: Any) -> tuple[Any, Any]:
    """Squared model errors [n, C] and unclipped scaled points [n, C] of the last row of every
    full window of a raw series [T, C] (n = T − L + 1)."""
    import numpy as np

    size = cal.window_size
    scaled = cal.scale(series)
    wins = np.lib.stride_tricks.sliding_window_view(scaled, size, axis=0)
    wins = np.ascontiguousarray(wins.transpose(0, 2, 1))  # [n, L, C]
    recon = np.concatenate(
        [model.reconstruct(wins[i : i + 4096]) for i in range(0, len(wins), 4096)]
    )
    errors = (recon.astype(np.float64) - scaled[size - 1 :]) ** 2
    return errors, cal.unclipped(series[size - 1 :])


def fixed_score_runs(kind: str, data: Path, bundles: Path) -> dict[str, Any]:
    """Rows "score fixed to K" for every candidate K, from the *same* bundles' models: each
    entity's model errors on its validation and test windows, the score of kind K fitted on the
    validation period exactly as the trainer fits it, calibrated by the bundle's rule — so the
    label-free choice is compared with every fixed choice in the same run. One more row, the
    hybrid with flags and constant channels scored as sensors (the design before context
    channels), shows what treating them as context does with the same models."""
    import numpy as np
    from tqdm import tqdm

    from detector.bundle import load_bundle
    from detector.runtime import OnnxReconstructor
    from detector.score import CANDIDATE_KINDS, ChannelScore, ScoreKind
    from model_training.channel_types import channel_types
    from model_training.evaluate import bundle_rule, method_summary, run_scores
    from model_training.metrics import find_period
    from model_training.train import nominal_subspace

    runs: dict[str, list[Any]] = {k: [] for k in (*CANDIDATE_KINDS, AS_SENSORS)}
    for ent in tqdm(load_entities(kind, data, None), desc=f"fixed scores {kind}"):
        bundle = load_bundle(bundles / bundle_dir_name(ent.name))
        cal, size = bundle.calibration, bundle.calibration.window_size
        model = OnnxReconstructor(bundle.model_path, cal.n_channels, size, "cpu")
        train = np.asarray(ent.train, np.float64)
        test = np.asarray(ent.test, np.float64)
        n_fit = int(len(train) * (1 - bundle.manifest["training"]["val_fraction"]))

        val_err, val_pts = window_errors(cal, model, train[n_fit - size + 1 :])
        test_err, test_pts = window_errors(cal, model, test)
        types = channel_types(train[:n_fit], list(ent.channel_names))
        const, ctx = types.constant_mask, types.context_mask
        sensor = None if ctx is None else ~ctx
        center, basis = nominal_subspace(cal.scale(train[:n_fit]), 0.95, sensor)
        rule, period = bundle_rule(bundle), find_period(test[:, 0])
        plain_center, plain_basis = nominal_subspace(cal.scale(train[:n_fit]), 0.95)
        fits: dict[str, tuple[ScoreKind, Any, Any, Any]] = {
            k: (k, center, basis, ctx) for k in CANDIDATE_KINDS
        }
        fits[AS_SENSORS] = ("hybrid", plain_center, plain_basis, None)
        for k, (kind_k, c_k, b_k, ctx_k) in fits.items():
            score = ChannelScore.fit(kind_k, val_err, val_pts, c_k, b_k, const, ctx_k)
            scores = np.full(len(test), np.nan)
            scores[size - 1 :] = score.score(test_err, test_pts)
            labels = np.asarray(ent.test_labels)
            runs[k].append(
                run_scores(ent.name, labels, score.score(val_err, val_pts), scores, rule, period)
            )
    return {
        (k if k == AS_SENSORS else f"score fixed: {k}"): method_summary(r) for k, r in runs.items()
    }


def epochs_kept(bundles: Path) -> str:
    """The label-free stopping rule on this set: epochs kept, and how often the first."""
    kept = sorted(
        json.loads(p.read_text())["training"]["best_epoch"] + 1
        for p in bundles.glob("*/manifest.json")
    )
    if not kept:
        return "no bundles"
    first = sum(k == 1 for k in kept)
    return (
        f"epochs kept by the stopping rule: median {kept[len(kept) // 2]}, range "
        f"{kept[0]}–{kept[-1]}; epoch 1 on {first} of {len(kept)} entities"
    )


def selection_counts(bundles: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in sorted(bundles.glob("*/manifest.json")):
        kind = json.loads(p.read_text())["score"]["kind"]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def targets(kind: str, report: dict[str, Any], flag: dict[str, Any]) -> list[str]:
    """Issue 23's targets, each met or missed with its figure."""
    methods = report["methods"]
    det = methods[DETECTOR]
    out = []
    for metric, label in (("mean_best_f1", "mean best F1"), ("mean_vus_pr", "mean VUS-PR")):
        best_base = max(
            (
                (n, m[metric])
                for n, m in methods.items()
                if n != DETECTOR
                and not n.startswith("score fixed")
                and n != AS_SENSORS
                and m[metric] is not None
            ),
            key=lambda x: x[1],
        )
        ok = det[metric] >= best_base[1]
        out.append(
            f"{label}: {det[metric]:.3f} vs best baseline {best_base[0]} {best_base[1]:.3f}: "
            f"{'met' if ok else 'missed'}"
        )
    lf, fl = det["label_free"]["f1"], flag["label_free"]["f1"]
    goal = max(1.5 * fl, TARGET_LF.get(kind, 0.0))
    out.append(
        f"label-free F1 {lf:.3f} vs ≥ {goal:.3f} (1.5 × flag-every-point {fl:.3f}, "
        f"floor {TARGET_LF.get(kind, 0.0):.2f}): {'met' if lf >= goal else 'missed'}"
    )
    ap, fa = det["alarm_precision"] or 0.0, det["false_alarms_per_10k"]
    out.append(f"alarm precision {ap:.3f} (≥ 0.5): {'met' if ap >= 0.5 else 'missed'}")
    out.append(f"false alarms / 10k {fa:.2f} (≤ 5): {'met' if fa <= 5 else 'missed'}")
    n = len(report["entities"])
    half, never = len(det["over_half_in_alarm"]), len(det["never_alarmed"])
    out.append(f"entities > half in alarm: {half} (0): {'met' if half == 0 else 'missed'}")
    out.append(f"never alarmed: {never} of {n} (≤ 10 %): {'met' if never <= 0.1 * n else 'missed'}")
    return out


def dataset_section(
    kind: str,
    report: dict[str, Any],
    flag: dict[str, Any],
    counts: dict[str, int],
    epochs: str = "",
) -> list[str]:
    n = len(report["entities"])
    fl = flag["label_free"]
    chosen = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return [
        f"### {kind.upper()}, {n} entities",
        "",
        *methods_table(report["methods"]),
        f"| flag every point | – | – | {fl['f1']:.3f} | {fl['precision']:.3f} "
        f"| {fl['recall']:.3f} | – | 1.000 | – | 0 | 0 | {n} |",
        "",
        f"Score kind of the bundles: {chosen} (tad train's --score; with auto it is picked per "
        f"entity by injected-fault AUC); {epochs}.",
        "",
        "Targets (issue 23):",
        "",
        *[f"- {t}" for t in targets(kind, report, flag)],
        "",
    ]


def main(
    smd: Annotated[Path | None, typer.Option(help="SMD root")] = Path("../shared/data/SMD"),
    msl: Annotated[Path | None, typer.Option(help="MSL root")] = Path("../shared/data/MSL"),
    out: Annotated[Path, typer.Option()] = Path("runs/quality"),
    jobs: Annotated[int, typer.Option(help="models trained at once")] = 2,
    readme: Annotated[
        Path | None,
        typer.Option(help="also write the tables between README.md's quality markers"),
    ] = None,
) -> None:
    from model_training.evaluate import evaluate_entities, write_report

    sections, summary = [], {}
    for kind, data in (("msl", msl), ("smd", smd)):
        if data is None:
            continue
        bundles = out / kind / "bundles"
        train_all(kind, data, bundles, jobs)
        report = evaluate_entities(load_entities(kind, data, None), bundles, out / kind / "eval")
        write_report(report, out / kind / "eval")
        fixed = fixed_score_runs(kind, data, bundles)
        report["methods"] = {
            DETECTOR: report["methods"][DETECTOR],
            **{k: {kk: vv for kk, vv in v.items() if kk != "entities"} for k, v in fixed.items()},
            **{k: v for k, v in report["methods"].items() if k != DETECTOR},
        }
        flag = flag_every_point(kind, data)
        counts = selection_counts(bundles)
        epochs = epochs_kept(bundles)
        sections += dataset_section(kind, report, flag, counts, epochs)
        summary[kind] = {
            "methods": {
                k: {kk: vv for kk, vv in v.items() if kk != "entities"}
                for k, v in report["methods"].items()
            },
            "flag_every_point": flag,
            "score_chosen": counts,
            "epochs": epochs,
            "targets": targets(kind, report, flag),
        }
    text = "\n".join(sections)
    (out / "quality.md").write_text(text)
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    if readme is not None:
        write_between_markers(readme, text)
    print(text)


def write_between_markers(path: Path, text: str) -> None:
    """Replace what stands between `<!-- quality:start -->` and `<!-- quality:end -->`."""
    doc = path.read_text()
    start, end = "<!-- quality:start -->", "<!-- quality:end -->"
    a, b = doc.index(start) + len(start), doc.index(end)
    path.write_text(doc[:a] + "\n" + text.replace("### ", "#### ") + "\n" + doc[b:])


if __name__ == "__main__":
    typer.run(main)
