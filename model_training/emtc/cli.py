"""`cluster-eval`: run the UEA clustering evaluation and write JSON + a markdown table.

Exported as `cluster_eval` for `tad cluster-eval` (wired elsewhere); also runnable as
`python -m model_training.emtc.cli DATA_ROOT NAME [NAME ...]`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_EPOCHS = (
    200  # EMTCConfig().epochs; a test keeps them equal (torch stays out of `tad --help`)
)


def cluster_eval(
    data_root: Annotated[Path, typer.Argument(help="UEA root: <root>/<Name>/<Name>_TEST.ts.gz")],
    datasets: Annotated[list[str], typer.Argument(help="UEA dataset names")],
    seeds: Annotated[int, typer.Option(help="seeds 0..seeds-1 per method")] = 5,
    epochs: Annotated[
        int,
        typer.Option(help="most training epochs (stops when pseudo-labels settle); last reported"),
    ] = (DEFAULT_EPOCHS),
    out: Annotated[Path, typer.Option(help="output folder for JSON and markdown")] = Path(
        "runs/emtc"
    ),
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
    name: Annotated[str, typer.Option(help="file stem of the outputs")] = "emtc_uea",
    methods: Annotated[
        str, typer.Option(help="comma-separated: emtc, no_ivm, kmeans_raw, minirocket")
    ] = "emtc,no_ivm,kmeans_raw,minirocket",
) -> dict[str, Any]:
    """Cluster each dataset's TEST split with EMTC, the MiniRocket peer and the baselines, in
    one run; write `<out>/<name>.json|md`."""
    from model_training.emtc.evaluate import METHODS, evaluate_dataset, markdown_table

    if seeds < 1 or epochs < 1:
        raise typer.BadParameter("seeds and epochs must be >= 1")
    if not data_root.is_dir():
        raise typer.BadParameter(f"data root {data_root} is not a folder")
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}", param_hint="--methods"
        )
    from tqdm import tqdm

    from model_training.emtc.config import EMTCConfig

    if {"emtc", "no_ivm"} & set(chosen):
        import torch

        torch.set_num_threads(threads)
    config = EMTCConfig(epochs=epochs, device=device)
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    fits = len(set(chosen) & {"emtc", "no_ivm", "minirocket"})
    with tqdm(total=len(datasets) * seeds * fits, unit="fit") as bar:
        for ds in datasets:
            bar.set_description(ds)

            def on_epoch(rec: dict[str, Any], bar: Any = bar) -> None:
                bar.set_postfix(epoch=f"{rec['epoch']}/{rec['epochs']}", loss=f"{rec['loss']:.3f}")

            def on_fit(method: str, seed: int, bar: Any = bar) -> None:
                bar.update(1)

            records.append(evaluate_dataset(data_root, ds, seeds, config, on_fit, on_epoch, chosen))
    result = {
        "protocol": "TEST split clustered, k = #classes, last-epoch labels, metrics after "
        "Hungarian matching; labels used only for scoring",
        "seeds": seeds,
        "methods": list(chosen),
        "config": {k: v for k, v in vars(config).items() if k not in ("seed", "use_ivm")},
        "torch_threads": threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "total_wall_seconds": time.perf_counter() - t0,
        "datasets": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown_table(records))
    typer.echo(markdown_table(records))
    return result


def main() -> None:
    """Entry point for `python -m model_training.emtc.cli`."""
    typer.run(cluster_eval)


if __name__ == "__main__":
    main()
