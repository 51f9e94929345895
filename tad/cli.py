"""The `tad` command: training, evaluation, serving and replay in one place."""

from __future__ import annotations

import typer

from model_training import cli as training_cli
from service import cli as service_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("train")(training_cli.train)
app.command("evaluate")(training_cli.evaluate)
app.command("serve")(service_cli.serve)
app.command("replay")(service_cli.replay)

try:  # EMTC needs torch, which the slim service image does not ship
    from model_training.emtc.cli import cluster_eval
except ImportError:  # pragma: no cover - exercised only without the train extra
    pass
else:
    app.command("cluster-eval")(cluster_eval)

if __name__ == "__main__":
    app()
