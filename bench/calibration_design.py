"""How the label-free calibration's defaults were chosen: variants on SMD and MSL together.

    python bench/calibration_design.py --quality runs/quality

Reads the bundles `make quality` trained (OUT/<set>/bundles), computes each entity's
score on its validation and test periods once (the bundle's own model), then calibrates it by
each variant of the rule — the h_validation rule (how many of the largest validation excursion
peaks h may pass), the drift horizon and the h floor — and evaluates the label-free alarms
against the test labels. Each variant is one global rule for every entity of both sets: the
labels choose a design default, never anything per entity (docs/ccm_tad.md discloses it).
Prints one markdown table per dataset; docs/ccm_tad.md quotes the output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import window_errors  # noqa: E402

from model_training.bundle_names import bundle_dir_name  # noqa: E402
from model_training.cli import load_entities  # noqa: E402

RAW = {"median_points": 1, "rebaseline_after_points": 0}  # the rules before the running median

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    *[
        (
            f"running median {m}, re-baseline after {k or 'never'}"
            + (" (default)" if (m, k) == (9, 750) else ""),
            {"median_points": m, "rebaseline_after_points": k},
        )
        for m, k in (
            (9, 750),
            (1, 0),
            (1, 750),
            (5, 750),
            (15, 750),
            (9, 0),
            (9, 500),
            (9, 1000),
        )
    ],
    *[
        (
            f"raw score, second-largest peak, adaptation 1,000, floor 3, h_validation ≤ {m:g} "
            "points" + (" (default before the running median)" if m == 10 else ""),
            {
                "skip_peaks": 1,
                "adapt_points": 1000,
                "min_alarm_points": 3.0,
                "max_alarm_points": m,
                **RAW,
            },
        )
        for m in (5.0, 10.0, 20.0, 40.0)
    ],
    (
        "raw score, h_validation = the maximum peak, adaptation 2,000, floor 2 (before issue 23)",
        {
            "skip_peaks": 0,
            "adapt_points": 2000,
            "min_alarm_points": 2.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, robust tail only (all peaks may be passed), adaptation 2,000, floor 2",
        {
            "skip_peaks": 10**9,
            "adapt_points": 2000,
            "min_alarm_points": 2.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 2,000, floor 2",
        {
            "skip_peaks": 1,
            "adapt_points": 2000,
            "min_alarm_points": 2.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 1,000, floor 2",
        {
            "skip_peaks": 1,
            "adapt_points": 1000,
            "min_alarm_points": 2.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 500, floor 2",
        {
            "skip_peaks": 1,
            "adapt_points": 500,
            "min_alarm_points": 2.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 1,000, floor 3, no cap "
        "(default before the cap)",
        {
            "skip_peaks": 1,
            "adapt_points": 1000,
            "min_alarm_points": 3.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 500, floor 3",
        {
            "skip_peaks": 1,
            "adapt_points": 500,
            "min_alarm_points": 3.0,
            "max_alarm_points": 0.0,
            **RAW,
        },
    ),
    (
        "raw score, second-largest peak, adaptation 1,000, floor 3, h_validation ≤ 10 points, "
        "budget 5 / 10k",
        {
            "skip_peaks": 1,
            "adapt_points": 1000,
            "min_alarm_points": 3.0,
            "max_alarm_points": 10.0,
            "false_alarms_per_10k": 5.0,
            **RAW,
        },
    ),
]


def entity_scores(kind: str, data: Path, bundles: Path) -> list[dict[str, Any]]:
    """Per entity: the bundle score's validation and test scores and the test labels."""
    from tqdm import tqdm

    from detector.bundle import load_bundle
    from detector.runtime import OnnxReconstructor
    from model_training.metrics import find_period

    out = []
    for ent in tqdm(load_entities(kind, data, None), desc=f"scores {kind}"):
        bundle = load_bundle(bundles / bundle_dir_name(ent.name))
        cal, size = bundle.calibration, bundle.calibration.window_size
        model = OnnxReconstructor(bundle.model_path, cal.n_channels, size, "cpu")
        train, test = np.asarray(ent.train, np.float64), np.asarray(ent.test, np.float64)
        n_fit = int(len(train) * (1 - bundle.manifest["training"]["val_fraction"]))
        val_err, val_pts = window_errors(cal, model, train[n_fit - size + 1 :])
        test_err, test_pts = window_errors(cal, model, test)
        score = cal.score_fn  # the bundle's own score (its kind, context channels)
        scores = np.full(len(test), np.nan)
        scores[size - 1 :] = score.score(test_err, test_pts)
        out.append(
            {
                "name": ent.name,
                "validation": score.score(val_err, val_pts),
                "test": scores,
                "labels": np.asarray(ent.test_labels),
                "period": find_period(test[:, 0]),
                "seed": int(bundle.manifest["training"]["seed"]),
            }
        )
    return out


def variant_row(label: str, entities: list[dict[str, Any]], options: dict[str, Any]) -> str:
    from model_training.calibrate import CalibrationRule
    from model_training.evaluate import method_summary, run_scores

    runs = [
        run_scores(
            e["name"],
            e["labels"],
            e["validation"],
            e["test"],
            CalibrationRule(seed=e["seed"], **options),
            e["period"],
        )
        for e in entities
    ]
    m = method_summary(runs)
    lf = m["label_free"]
    return (
        f"| {label} | {lf['f1']:.3f} | {lf['precision']:.3f} | {lf['recall']:.3f} "
        f"| {m['alarm_precision'] or 0:.3f} | {m['false_alarms_per_10k']:.2f} "
        f"| {len(m['never_alarmed'])} | {len(m['over_half_in_alarm'])} |"
    )


def main(
    quality: Annotated[Path, typer.Option(help="OUT of make quality")] = Path("runs/quality"),
    smd: Annotated[Path, typer.Option()] = Path("../shared/data/SMD"),
    msl: Annotated[Path, typer.Option()] = Path("../shared/data/MSL"),
) -> None:
    for kind, data in (("smd", smd), ("msl", msl)):
        entities = entity_scores(kind, data, quality / kind / "bundles")
        print(f"\n{kind.upper()}, {len(entities)} entities, bundle scores, label-free alarms\n")
        print(
            "| calibration | F1 | P | R | alarm precision | false alarms / 10k "
            "| never alarmed | > half in alarm |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for label, options in VARIANTS:
            print(variant_row(label, entities, options), flush=True)


if __name__ == "__main__":
    typer.run(main)
