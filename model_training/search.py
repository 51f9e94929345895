"""Optional hyperparameter search on a label-free objective (`tad train --search N`).

optuna's TPE sampler proposes lr, d, df and M; each trial trains with the usual stopping rule
and is worth the best synthetic-fault separation AUC it reached on the validation windows
(model_training.synthetic). No test label is read, so the choice can be made per entity
without fooling anyone; the winning values are written to the bundle's manifest.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from model_training.train import TrainConfig, train


def search_config(data: np.ndarray, cfg: TrainConfig, n_trials: int) -> TrainConfig:
    """The config with the best label-free trial's lr, d_model, expansion and n_clusters."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    max_clusters = max(1, min(cfg.max_clusters, np.asarray(data).shape[1]))

    def objective(trial: optuna.Trial) -> float:
        trial_cfg = replace(
            cfg,
            lr=trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            d_model=trial.suggest_categorical("d_model", [32, 64, 128]),
            expansion=trial.suggest_int("expansion", 2, 5),
            n_clusters=trial.suggest_int("n_clusters", 1, max_clusters),
            progress=False,
        )
        return max(h["fault_auc"] for h in train(data, trial_cfg).history)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed)
    )
    study.optimize(objective, n_trials=n_trials, show_progress_bar=cfg.progress)
    extra = dict(cfg.extra, search={"trials": n_trials, "best_fault_auc": study.best_value})
    return replace(cfg, **study.best_params, extra=extra)
