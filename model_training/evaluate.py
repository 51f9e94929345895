"""Evaluate bundles on labelled test data through the same online core the service runs.

Side by side, per entity and aggregated over the concatenated entities (as the paper does):
  (a) oracle  — α and h swept on the test labels (the paper's protocol; no service can do it)
  (b) label-free — the bundle's own α and h, alarms with onset/offset backtracking, with the
      operator's view of them (model_training.alarm_metrics)
  (c) point-based best F1 of the raw score (oracle threshold)
  (d) VUS-PR as TSB-AD defines it (threshold-free)
and the same label-free and threshold-free rows for simple baselines fitted on the same
nominal data and calibrated by the same rule (model_training.baselines).

Why one file of ~300 lines: every row of the report (the model's and each baseline's) goes
through the same per-entity loop, so the protocol is written once, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from detector.alarm import AlarmParams
from detector.bundle import Bundle, load_bundle
from detector.offline import accumulate_series, alarm_spans, span_predictions, stream_series
from detector.pvalue import TailReference
from detector.runtime import online_detector
from model_training.alarm_metrics import alarm_report
from model_training.baselines import baseline_scores
from model_training.bundle_names import bundle_dir_name
from model_training.calibrate import CalibrationRule, calibrate, evidence, evidence_scores
from model_training.data import Entity
from model_training.metrics import best_f1, detection_delay, find_period, point_prf, vus_pr

ORACLE_ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9)
ORACLE_THRESHOLDS = 200
DETECTOR = "ccm-tad"


@dataclass
class EntityRun:
    """Everything one detector produced for one entity's test series."""

    name: str
    labels: np.ndarray  # [n] int8
    score: np.ndarray  # [n] anomaly score, NaN during warm-up
    evidence: np.ndarray  # [n] β with the calibrated α
    accumulated: np.ndarray  # [n] s
    predictions: np.ndarray  # [n] int8, label-free alarms backtracked to [onset, offset]
    spans: np.ndarray  # [K, 4] label-free alarms: onset, trigger, offset, last alarmed
    reference: TailReference
    params: AlarmParams
    period: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.params.threshold


def _require_test(entity: Entity) -> tuple[np.ndarray, np.ndarray]:
    if entity.test is None or entity.test_labels is None:
        raise ValueError(f"entity {entity.name} has no labelled test data")
    return entity.test, entity.test_labels


def run_entity(entity: Entity, bundle: Bundle) -> EntityRun:
    """Feed the entity's test series through the online detector, point order preserved."""
    test, labels = _require_test(entity)
    if tuple(entity.channel_names) != bundle.calibration.channel_names:
        raise ValueError(f"entity {entity.name}: channels differ from bundle {bundle.path}")
    det = online_detector(bundle, "cpu")
    state = det.new_state(entity.name)
    values = test.astype(np.float64)
    res = det.step(state, values, np.arange(len(values), dtype=np.float64))
    rows: dict[int, list[int]] = {}
    for e in res.events:
        if e.kind == "opened":
            rows[e.alarm_id] = [e.onset_index, e.trigger_index, e.trigger_index, len(values) - 1]
        elif e.offset_index is not None:
            rows[e.alarm_id][2:] = [e.offset_index, e.at_index - 1]
    if state.alarm is not None:  # still open at the end of the test set
        rows[state.alarm.alarm_id][2] = state.alarm.last_positive_index
    spans = np.array(list(rows.values()), np.int64).reshape(-1, 4)
    return EntityRun(
        entity.name,
        labels.astype(np.int8),
        res.score,
        res.evidence,
        res.accumulated,
        span_predictions(spans, len(values)),
        spans,
        bundle.calibration.reference,
        bundle.calibration.params,
        find_period(test[:, 0]),
        {"alarms": len(spans), "p_value": res.p_value, "timestamps": entity.test_timestamps},
    )


def bundle_rule(bundle: Bundle) -> CalibrationRule:
    """The bundle's own label-free rule, to calibrate baselines exactly like it."""
    p, alarm = bundle.calibration.params, bundle.manifest["alarm"]
    return CalibrationRule(
        alpha=p.alpha,
        false_alarms_per_10k=float(alarm.get("false_alarms_per_10k", 1.0)),
        min_alarm_points=float(alarm.get("min_alarm_points", CalibrationRule.min_alarm_points)),
        max_alarm_points=float(alarm.get("max_alarm_points", 0.0)),
        delta=p.delta,
        seed=int(bundle.manifest.get("training", {}).get("seed", 0)),
        epsilon_ratio=p.epsilon / p.alpha,
        adapt_points=p.adapt_points,
        median_points=p.median_points,
        rebaseline_after_points=p.rebaseline_after_points,
    )


def run_scores(
    name: str,
    labels: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    rule: CalibrationRule,
    period: int,
) -> EntityRun:
    """A baseline's scores through the same calibration and alarm rules as the bundle (the
    offline restatement of the online core, equal to it by tests/model_training)."""
    val, rule = evidence_scores(validation, rule)  # the running medians the evidence reads
    cal = calibrate(val, rule)
    ref = TailReference.fit(val)
    params = rule.params(cal["threshold"])
    s, beta = stream_series(test, ref, params)
    spans = alarm_spans(s, beta, params.threshold)
    preds = span_predictions(spans, len(test))
    return EntityRun(
        name,
        labels.astype(np.int8),
        test,
        beta,
        s,
        preds,
        spans,
        ref,
        params,
        period,
        {"alarms": len(spans)},
    )


def baseline_runs(entity: Entity, bundle: Bundle) -> dict[str, EntityRun]:
    """Every baseline for one entity, on the bundle's split, scaling, warm-up and rule."""
    test, labels = _require_test(entity)
    training = bundle.manifest.get("training", {})
    out = {}
    warm = bundle.calibration.window_size - 1
    rule, period = bundle_rule(bundle), find_period(test[:, 0])
    for b in baseline_scores(entity.train, test, float(training.get("val_fraction", 0.2))):
        scores = np.asarray(b.test, np.float64).copy()
        scores[:warm] = np.nan  # the same warm-up as the detector
        out[b.name] = run_scores(entity.name, labels, b.validation, scores, rule, period)
    return out


def _accumulated(
    r: EntityRun, alpha: float, test_reference: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(s, β) of a finished run re-scored with another α (same ε, δ and adaptation). With
    `test_reference` the p-values come from the test scores themselves instead of the
    calibration scores — offline only, as the authors' code sets α from test-score quantiles."""
    scored = ~np.isnan(r.score)
    ref = TailReference.fit(r.score[scored]) if test_reference else r.reference
    p = r.params
    rule = CalibrationRule(
        alpha=alpha, delta=p.delta, epsilon_ratio=p.epsilon / alpha, adapt_points=p.adapt_points
    )
    return evidence_series(r.score, ref, rule)


def evidence_series(
    score: np.ndarray, reference: TailReference, rule: CalibrationRule
) -> tuple[np.ndarray, np.ndarray]:
    """(s, β) of a score series with NaN warm-up: β = 0 and s = 0 where there is no score."""
    scored = ~np.isnan(score)
    beta = np.zeros(len(score))
    beta[scored] = evidence(score[scored], reference, rule)
    return accumulate_series(beta, rule.delta, scored), beta


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
        "alarms_report": alarm_report(r.labels, r.spans).as_dict(),
        "point_best_f1": best_f1(r.labels, r.score).as_dict(),
        "vus_pr": vus_pr(r.labels, filled, sliding_window=r.period) if has_anomaly else None,
        "mean_delay": delay.mean_delay,
        "segments_detected": delay.n_detected,
        "segments": delay.n_segments,
        "alarms": r.extra["alarms"],
        "threshold": r.threshold,
    }


def method_summary(runs: list[EntityRun]) -> dict[str, Any]:
    """One detector over all entities: per-entity means, pooled label-free and alarm metrics."""
    per = [entity_metrics(r) for r in runs]
    labels = np.concatenate([r.labels for r in runs])
    preds = np.concatenate([r.predictions for r in runs])
    reps = [m["alarms_report"] for m in per]
    n_alarms = sum(q["alarms"] for q in reps)
    true_alarms = sum(round((q["alarm_precision"] or 0) * q["alarms"]) for q in reps)
    n_segments = sum(q["segments"] for q in reps)
    nominal = int((labels == 0).sum())
    delays = [q["median_delay"] for q in reps if q["median_delay"] is not None]
    vus = [m["vus_pr"] for m in per if m["vus_pr"] is not None]
    return {
        "entities": per,
        "mean_best_f1": float(np.mean([m["point_best_f1"]["f1"] for m in per])),
        "mean_vus_pr": float(np.mean(vus)) if vus else None,
        "label_free": point_prf(labels, preds).as_dict(),
        "label_free_mean_entity_f1": float(np.mean([m["label_free"]["f1"] for m in per])),
        "alarms": n_alarms,
        "alarm_precision": true_alarms / n_alarms if n_alarms else None,
        "segment_recall": (
            sum(q["segments_detected"] for q in reps) / n_segments if n_segments else None
        ),
        "false_alarms_per_10k": (n_alarms - true_alarms) / max(nominal, 1) * 1e4,
        "median_delay": float(np.median(delays)) if delays else None,
        "never_alarmed": [m["entity"] for m in per if m["alarms"] == 0],
        "over_half_in_alarm": [
            m["entity"] for m in per if m["alarms_report"]["alarm_fraction"] > 0.5
        ],
    }


def evaluate_entities(
    entities: list[Entity],
    bundles: Path,
    plots: Path | None,
    baselines: bool = True,
    bundle_paths: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Run each entity's bundle (bundle_paths[name], else bundles/<entity>) and the
    baselines; collect the metrics (and, under "runs", the per-point series of the detector)."""
    runs: list[EntityRun] = []
    others: dict[str, list[EntityRun]] = {}
    for ent in tqdm(entities, desc="evaluate"):
        where = (bundle_paths or {}).get(ent.name, bundles / bundle_dir_name(ent.name))
        bundle = load_bundle(where)
        runs.append(run_entity(ent, bundle))
        if baselines:
            for name, run in baseline_runs(ent, bundle).items():
                others.setdefault(name, []).append(run)
        if plots is not None:
            from model_training.plots import plot_run

            plot_run(runs[-1], plots / f"{bundle_dir_name(ent.name)}.png")
    main = method_summary(runs)
    labels = np.concatenate([r.labels for r in runs])
    delays = [d for r in runs for d in detection_delay(r.labels, r.predictions).delays]
    n_segments = sum(m["segments"] for m in main["entities"])
    return {
        "runs": runs,
        "entities": main["entities"],
        "methods": {DETECTOR: {k: v for k, v in main.items() if k != "entities"}}
        | {name: method_summary(rs) for name, rs in others.items()},
        "aggregate": {
            "oracle": oracle_sweep(runs)[0],
            "oracle_per_entity": oracle_per_entity(runs),
            "oracle_test_reference": oracle_sweep(runs, test_reference=True)[0],
            "point_best_f1_per_entity": point_per_entity(runs),
            "label_free": main["label_free"],
            "label_free_mean_entity_f1": main["label_free_mean_entity_f1"],
            "point_best_f1": best_f1(labels, np.concatenate([r.score for r in runs])).as_dict(),
            "vus_pr_mean": main["mean_vus_pr"],
            "mean_delay": float(np.mean(delays)) if delays else None,
            "segments_detected": len(delays),
            "segments": n_segments,
        },
    }


def write_report(report: dict[str, Any], out: Path) -> None:
    """report.json and report.md (see model_training.report)."""
    from model_training.report import report_markdown

    out.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in report.items() if k != "runs"}
    (out / "report.json").write_text(json.dumps(body, indent=2))
    (out / "report.md").write_text(report_markdown(body))


POINT_COLUMNS = (
    "index",
    "time",
    "score",
    "p_value",
    "evidence",
    "accumulated",
    "alarm",
    "label",
)


def write_points(report: dict[str, Any], out: Path) -> list[Path]:
    """points/<entity>.csv per entity: every scored point's score, p-value, evidence β,
    accumulated evidence s, alarm (1 inside a backtracked [onset, offset] span) and label,
    with its time (ISO 8601 UTC when the data has timestamps, else empty) — to plot, or to
    pool across files."""
    import csv
    import datetime as dt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r in report.get("runs", []):
        stamps = r.extra.get("timestamps")
        p_value = r.extra.get("p_value")
        path = out / f"{bundle_dir_name(r.name)}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(POINT_COLUMNS)
            for i in range(len(r.labels)):
                when = (
                    dt.datetime.fromtimestamp(float(stamps[i]), dt.UTC).isoformat()
                    if stamps is not None
                    else ""
                )
                w.writerow(
                    [
                        i,
                        when,
                        _num(r.score[i]),
                        _num(p_value[i]) if p_value is not None else "",
                        _num(r.evidence[i]),
                        _num(r.accumulated[i]),
                        int(r.predictions[i]),
                        int(r.labels[i]),
                    ]
                )
        written.append(path)
    return written


def _num(x: float) -> str:
    return "" if not np.isfinite(x) else repr(float(x))
