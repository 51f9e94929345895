"""The `tad` command: training, evaluation, serving and replay in one place.

A user's mistake (a bad option, a file that cannot be read, a column that is not there) is one
line on stderr naming the option, file, line or column, and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

# typer ships its own click; its exceptions are the ones raised here
from typer._click import exceptions as click_exceptions

from model_training import cli as training_cli
from model_training.emtc.cli import cluster_eval
from service import cli as service_cli
from service.worker import worker

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
app.command("train")(training_cli.train)
app.command("evaluate")(training_cli.evaluate)
app.command("serve")(service_cli.serve)
app.command("replay")(service_cli.replay)
app.command("worker")(worker)  # clustering and training jobs from Redis, without HTTP

app.command("cluster-eval")(cluster_eval)  # the EMTC columns need the train extra (torch)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input was wrong, not the program (importable in the serving
    install: no pandas or torch on this path)."""
    from detector.errors import BundleError
    from model_training.calibrate import CalibrationSizeError, DegenerateCalibrationError
    from model_training.errors import DatasetFormatError

    return (
        DatasetFormatError,
        BundleError,
        CalibrationSizeError,
        DegenerateCalibrationError,
        FileNotFoundError,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit(n) returns n
        if isinstance(code, int) and code:
            raise SystemExit(code)
    except click_exceptions.NoArgsIsHelpError:
        raise SystemExit(0) from None
    except click_exceptions.UsageError as exc:  # BadParameter included: names the option
        hint = getattr(exc, "param_hint", None) or ""
        where = f"{hint}: " if isinstance(hint, str) and hint else ""
        print(f"error: {where}{exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "pandas", "matplotlib", "sklearn", "optuna", "onnx"):
            raise
        print(
            f"error: this command needs {exc.name}, which the serving install leaves out: "
            "install the trainer extra, pip install 'ccm-tad-service[train]' (make install)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
