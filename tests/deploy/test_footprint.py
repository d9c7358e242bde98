"""The robot side imports on the Pi: every module of pidog_description, pidog_control and pidog_hw
imports with the training-side packages blocked (tests/footprint.py lists them)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

FOOTPRINT = Path(__file__).resolve().parents[1] / "footprint.py"
ROBOT_SIDE = ("pidog_description", "pidog_control", "pidog_hw")


def robot_side_modules() -> list[str]:
    """Every module of the robot-side packages, found on disk (a new module is checked too)."""
    modules = []
    for name in ROBOT_SIDE:
        package = importlib.import_module(name)
        modules.append(name)
        modules += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=f"{name}.")]
    return modules


def footprint(*modules: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FOOTPRINT), *modules], capture_output=True, text=True, timeout=120
    )


def test_every_robot_side_module_imports_without_training_packages() -> None:
    modules = robot_side_modules()
    assert {"pidog_control.policy_node", "pidog_control.bag_recorder", "pidog_hw.hw_node"} <= set(modules)
    result = footprint(*modules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_footprint_check_catches_a_training_import() -> None:
    # So the test above can fail: a training module, and a stack package the robot must not have.
    for module in ("pidog_learning.bc", "pidog_sim", "onnx"):
        result = footprint(module)
        assert result.returncode != 0 and "blocked" in result.stdout, (module, result.stdout)
