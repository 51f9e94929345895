"""`tad cluster-eval`'s default epoch count is EMTC's (written out to keep torch lazy)."""

from __future__ import annotations

from model_training.emtc.cli import DEFAULT_EPOCHS
from model_training.emtc.train import EMTCConfig


def test_default_epochs_match_the_config() -> None:
    assert EMTCConfig().epochs == DEFAULT_EPOCHS
