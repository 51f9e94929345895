"""What `tad train` prints per bundle names the evidence rules the bundle carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_training.cli import train_summary


def manifest(alarm: dict[str, Any]) -> dict[str, Any]:
    return {
        "training": {
            "best_epoch": 4,
            "history": [{}] * 9,
            "train_seconds": 3.0,
            "n_validation": 400,
        },
        "alarm": {"threshold": 22.4, "h_validation": 5.0, "h_null": 22.4, "h_floor": 13.8} | alarm,
        "score": {"kind": "hybrid"},
    }


def test_the_summary_names_the_median_and_the_rebaseline() -> None:
    text = train_summary(
        "m", Path("b"), manifest({"median_points": 9, "rebaseline_after_points": 750})
    )
    assert "running median of 9 scores" in text
    assert "an alarm of 750 points re-baselines its stream" in text


def test_an_older_bundle_reads_the_raw_score_and_never_rebaselines() -> None:
    text = train_summary("m", Path("b"), manifest({}))
    assert "the raw score" in text and "no automatic re-baseline" in text
