"""Evaluate bundles on labelled test data through the same online core the service runs.

Side by side, per entity and aggregated over the concatenated entities (as the paper does):
  (a) oracle  — α and h swept on the test labels (the paper's protocol; no service can do it)
  (b) label-free — the bundle's own α and h, alarms with onset/offset backtracking
  (c) point-based best F1 of the raw score (oracle threshold)
  (d) VUS-PR as TSB-AD defines it (threshold-free)
  (e) mean detection delay per labelled segment, for (b)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from detector.bundle import Bundle, load_bundle
from detector.offline import accumulate_series, alarm_spans, span_predictions
from detector.online import OnlineDetector
from detector.runtime import OnnxReconstructor
from model_training.data import Entity
from model_training.metrics import best_f1, detection_delay, find_period, point_prf, vus_pr

ORACLE_ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9)
ORACLE_THRESHOLDS = 200


@dataclass
class EntityRun:
    """Everything the online core produced for one entity's test series."""

    name: str
    labels: np.ndarray  # [n] int8
    score: np.ndarray  # [n] reconstruction MSE, NaN during warm-up
    evidence: np.ndarray  # [n] β with the bundle's α
    accumulated: np.ndarray  # [n] s
    predictions: np.ndarray  # [n] int8, label-free alarms backtracked to [onset, offset]
    sorted_losses: np.ndarray
    epsilon: float
    delta: int
    threshold: float
    period: int
    extra: dict[str, Any] = field(default_factory=dict)


def run_entity(entity: Entity, bundle: Bundle) -> EntityRun:
    """Feed the entity's test series through the online detector, point order preserved."""
    if entity.test is None or entity.test_labels is None:
        raise ValueError(f"entity {entity.name} has no labelled test data")
    if tuple(entity.channel_names) != bundle.calibration.channel_names:
        raise ValueError(f"entity {entity.name}: channels differ from bundle {bundle.path}")
    det = OnlineDetector(bundle.calibration, OnnxReconstructor.from_bundle(bundle, "cpu"))
    state = det.new_state(entity.name)
    values = entity.test.astype(np.float64)
    res = det.step(state, values, np.arange(len(values), dtype=np.float64))
    opened = {e.alarm_id: e for e in res.events if e.kind == "opened"}
    rows = [(e.onset_index, e.offset_index) for e in res.events if e.kind == "closed"]
    if state.alarm is not None:  # still open at the end of the test set
        a = state.alarm
        rows.append((a.onset_index, a.last_positive_index))
    spans = np.array([[on, 0, off, 0] for on, off in rows], np.int64).reshape(-1, 4)
    p = bundle.calibration.params
    return EntityRun(
        entity.name,
        entity.test_labels.astype(np.int8),
        res.score,
        res.evidence,
        res.accumulated,
        span_predictions(spans, len(values)),
        bundle.calibration.sorted_losses,
        p.epsilon,
        p.delta,
        p.threshold,
        find_period(entity.test[:, 0]),
        {"alarms": len(opened)},
    )


def _accumulated(
    r: EntityRun, alpha: float, test_reference: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(s, β) of a finished run re-scored with another α (same ε and δ). With
    `test_reference` the p-values come from the test scores themselves instead of the
    validation losses — offline only, as the authors' code sets α from test-score quantiles."""
    scored = ~np.isnan(r.score)
    ref = np.sort(r.score[scored]) if test_reference else r.sorted_losses
    n = len(ref)
    p = (n - np.searchsorted(ref, np.nan_to_num(r.score), side="right")) / n
    beta = np.where(scored, np.log(alpha / (p + r.epsilon)), 0.0)
    return accumulate_series(beta, r.delta, scored), beta


def oracle_sweep(
    runs: list[EntityRun], test_reference: bool = False
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One (α, h) for all the runs, chosen by the best F1 of their concatenated predictions;
    returns it and the predictions it makes. ORACLE: it reads the test labels."""
    labels = np.concatenate([r.labels for r in runs])
    best: dict[str, Any] = {
        "f1": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "alpha": None,
        "threshold": float("nan"),
    }
    best_preds = [np.zeros(len(r.labels), np.int8) for r in runs]
    for alpha in ORACLE_ALPHAS:
        series = [_accumulated(r, alpha, test_reference) for r in runs]
        all_s = np.concatenate([s for s, _ in series])
        if not (all_s > 0).any():
            continue
        grid = np.unique(np.quantile(all_s[all_s > 0], np.linspace(0, 0.999, ORACLE_THRESHOLDS)))
        for h in grid:
            preds = [span_predictions(alarm_spans(s, b, h), len(s)) for s, b in series]
            prf = point_prf(labels, np.concatenate(preds))
            if prf.f1 > best["f1"]:
                best = prf.as_dict() | {"alpha": alpha, "threshold": float(h)}
                best_preds = preds
    return best, best_preds


def oracle_per_entity(runs: list[EntityRun]) -> dict[str, Any]:
    """(α, h) chosen on each entity's own labels, predictions concatenated. ORACLE."""
    labels = np.concatenate([r.labels for r in runs])
    preds = [oracle_sweep([r])[1][0] for r in tqdm(runs, desc="oracle per entity", leave=False)]
    return point_prf(labels, np.concatenate(preds)).as_dict()


def point_per_entity(runs: list[EntityRun]) -> dict[str, Any]:
    """Raw-score threshold chosen on each entity's own labels, predictions concatenated."""
    labels = np.concatenate([r.labels for r in runs])
    preds = [r.score >= best_f1(r.labels, r.score).threshold for r in runs]
    return point_prf(labels, np.concatenate(preds)).as_dict()


def entity_metrics(r: EntityRun) -> dict[str, Any]:
    filled = np.where(np.isnan(r.score), np.nanmin(r.score), r.score)
    delay = detection_delay(r.labels, r.predictions)
    has_anomaly = bool(r.labels.any())
    return {
        "entity": r.name,
        "label_free": point_prf(r.labels, r.predictions).as_dict(),
        "point_best_f1": best_f1(r.labels, r.score).as_dict(),
        "vus_pr": vus_pr(r.labels, filled, sliding_window=r.period) if has_anomaly else None,
        "mean_delay": delay.mean_delay,
        "segments_detected": delay.n_detected,
        "segments": delay.n_segments,
        "alarms": r.extra["alarms"],
        "threshold": r.threshold,
    }


def evaluate_entities(entities: list[Entity], bundles: Path, plots: Path | None) -> dict[str, Any]:
    """Run each entity's bundle (bundles/<entity>) and collect the metrics."""
    from model_training.cli import bundle_dir_name

    runs = []
    for ent in tqdm(entities, desc="evaluate"):
        runs.append(run_entity(ent, load_bundle(bundles / bundle_dir_name(ent.name))))
        if plots is not None:
            from model_training.plots import plot_run

            plot_run(runs[-1], plots / f"{bundle_dir_name(ent.name)}.png")
    per_entity = [entity_metrics(r) for r in runs]
    labels = np.concatenate([r.labels for r in runs])
    preds = np.concatenate([r.predictions for r in runs])
    delays = [d for r in runs for d in detection_delay(r.labels, r.predictions).delays]
    n_segments = sum(m["segments"] for m in per_entity)
    vus = [m["vus_pr"] for m in per_entity if m["vus_pr"] is not None]
    return {
        "entities": per_entity,
        "aggregate": {
            "oracle": oracle_sweep(runs)[0],
            "oracle_per_entity": oracle_per_entity(runs),
            "oracle_test_reference": oracle_sweep(runs, test_reference=True)[0],
            "point_best_f1_per_entity": point_per_entity(runs),
            "label_free": point_prf(labels, preds).as_dict(),
            "label_free_mean_entity_f1": float(
                np.mean([m["label_free"]["f1"] for m in per_entity])
            ),
            "point_best_f1": best_f1(labels, np.concatenate([r.score for r in runs])).as_dict(),
            "vus_pr_mean": float(np.mean(vus)) if vus else None,
            "mean_delay": float(np.mean(delays)) if delays else None,
            "segments_detected": len(delays),
            "segments": n_segments,
        },
    }


def write_report(report: dict[str, Any], out: Path) -> None:
    """report.json and report.md (aggregate table, then one row per entity)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    a = report["aggregate"]
    o, lf, pb = a["oracle"], a["label_free"], a["point_best_f1"]
    oe, pe = a["oracle_per_entity"], a["point_best_f1_per_entity"]
    ot = a["oracle_test_reference"]
    delay = "–" if a["mean_delay"] is None else f"{a['mean_delay']:.1f}"
    lines = [
        "| protocol | F1 | precision | recall | notes |",
        "|---|---|---|---|---|",
        f"| (a) evidence accumulator, α/h swept on test labels (**oracle**, paper's protocol) "
        f"| {o['f1']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} "
        f"| one α={o['alpha']}, h={o['threshold']:.2f} for all entities |",
        f"| (a') evidence accumulator, α/h swept per entity on its labels (**oracle**) "
        f"| {oe['f1']:.3f} | {oe['precision']:.3f} | {oe['recall']:.3f} "
        "| predictions concatenated |",
        f"| (a'') as (a), p-values against each entity's own test scores (**oracle**, offline) "
        f"| {ot['f1']:.3f} | {ot['precision']:.3f} | {ot['recall']:.3f} "
        f"| α={ot['alpha']}, h={ot['threshold']:.2f} |",
        f"| (b) evidence accumulator, bundle's label-free α/h | {lf['f1']:.3f} "
        f"| {lf['precision']:.3f} | {lf['recall']:.3f} "
        f"| mean per-entity F1 {a['label_free_mean_entity_f1']:.3f}; "
        f"{a['segments_detected']}/{a['segments']} segments, mean delay {delay} points |",
        f"| (c) raw score, best threshold (**oracle**, point-based) | {pb['f1']:.3f} "
        f"| {pb['precision']:.3f} | {pb['recall']:.3f} | one threshold for all entities |",
        f"| (c') raw score, best threshold per entity (**oracle**, point-based) "
        f"| {pe['f1']:.3f} | {pe['precision']:.3f} | {pe['recall']:.3f} "
        "| predictions concatenated |",
        f"| (d) VUS-PR (TSB-AD), mean over entities | {a['vus_pr_mean']:.3f} | | "
        "| threshold-free |",
        "",
        "| entity | label-free F1 | P | R | point best F1 (oracle) | VUS-PR | alarms | detected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in report["entities"]:
        v = "–" if m["vus_pr"] is None else f"{m['vus_pr']:.3f}"
        f = m["label_free"]
        lines.append(
            f"| {m['entity']} | {f['f1']:.3f} | {f['precision']:.3f} | {f['recall']:.3f} "
            f"| {m['point_best_f1']['f1']:.3f} | {v} | {m['alarms']} "
            f"| {m['segments_detected']}/{m['segments']} |"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n")
