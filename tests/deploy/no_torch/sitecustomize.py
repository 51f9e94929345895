"""On PYTHONPATH of a test's service process: the training packages cannot be imported.

The runtime image installs the service without the `train` extra (no torch, onnx, onnxscript,
optuna, pandas, pyarrow, matplotlib); a process started with this on its path fails the same
way the image would if anything on its serving path imported one of them.
"""

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

_BLOCKED = {"torch", "onnx", "onnxscript", "optuna", "pandas", "pyarrow", "matplotlib"}


class _NoTrainingPackages(MetaPathFinder):
    def find_spec(
        self,
        name: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {name!r} (not in the runtime image)", name=name.split(".")[0]
            )
        return None


sys.meta_path.insert(0, _NoTrainingPackages())
