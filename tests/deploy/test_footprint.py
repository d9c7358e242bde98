"""The deploy path imports on the Pi: no torch, mujoco, stable_baselines3 or gymnasium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FOOTPRINT = Path(__file__).resolve().parents[1] / "footprint.py"
DEPLOY_MODULES = [
    "pidog_learning.policy_node",
    "pidog_learning.policy_runtime",
    "pidog_learning.safety",
    "pidog_learning.teleop_gait_node",
    "pidog_learning.keyboard_teleop",
]


def test_policy_node_imports_without_training_packages() -> None:
    result = subprocess.run(
        [sys.executable, str(FOOTPRINT), *DEPLOY_MODULES], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
