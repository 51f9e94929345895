"""Training jobs take the evidence rules as `tad train` does (issue 23)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.training.schemas import TrainingOptions


def test_the_running_median_and_the_rebaseline_reach_the_trainer() -> None:
    from model_training.train import TrainConfig

    opts = TrainingOptions.model_validate({"median_points": 5, "rebaseline_after_points": 0})
    cfg = TrainConfig(**opts.model_dump(exclude_none=True), progress=False)
    assert (cfg.median_points, cfg.rebaseline_after_points) == (5, 0)


@pytest.mark.parametrize(
    "field,value", [("median_points", 0), ("median_points", 513), ("rebaseline_after_points", -1)]
)
def test_out_of_range_rules_are_refused_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainingOptions.model_validate({field: value})
