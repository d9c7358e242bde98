"""Import modules with everything the robot must not need made unimportable (the Pi footprint).

Usage: python tests/footprint.py MODULE [MODULE ...]
Exits 0 when every module imports without a training-side package: torch, mujoco,
stable-baselines3, gymnasium, onnx (onnxruntime is allowed: it runs the policy), matplotlib,
tensorboard, or this stack's own training packages pidog_sim and pidog_learning (DESIGN.md §1).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

BLOCKED = (
    "torch",
    "mujoco",
    "stable_baselines3",
    "gymnasium",
    "onnx",
    "matplotlib",
    "tensorboard",
    "pidog_sim",
    "pidog_learning",
)


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: D102
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: not available on the robot")
        return None


def main(modules: list[str]) -> int:
    sys.meta_path.insert(0, _Blocker())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"{name}: {exc}")
            return 1
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if leaked:
        print(f"blocked modules were imported: {leaked}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
