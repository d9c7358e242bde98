"""A policy the pipeline trains walks: not only the shipped file.

The cheapest run that should walk: trot demonstrations -> BC (no PPO) -> the exported
policy.onnx, judged by pidog-eval in the randomised sim against the scripted trot it learned
from, under the same seeds. About 40 s of CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from learning_helpers import run_train

pytestmark = pytest.mark.slow

EPISODES, SECONDS = 5, 10.0


def evaluate(controller: str, out: Path) -> dict:
    """pidog-eval as a user runs it: randomised episodes, fixed seed, JSON summary."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pidog_learning.eval_cli",
            "--controller",
            controller,
            "--episodes",
            str(EPISODES),
            "--seconds",
            str(SECONDS),
            "--seed",
            "7",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_bc_from_the_trot_walks_like_the_trot(tmp_path: Path) -> None:
    code, stdout, stderr = run_train(
        "--config",
        "tiny",
        "--n-demo-episodes",
        "16",
        "--total-bc-epochs",
        "100",  # behind the default action filter 50 epochs of this small net walked 0.083 m/s, 100 0.131
        "--total-rl-timesteps",
        "0",
        "--visualize-freq",
        "0",
        "--set",
        "demos.episode_seconds=10",
        "--set",
        "env.episode_seconds=10",
        "--set",
        "policy.net_arch=[128,128]",
        "--output-dir",
        str(tmp_path),
        "--experiment-name",
        "bc",
    )
    assert code == 0, stdout + stderr
    policy = evaluate(str(tmp_path / "bc" / "policy.onnx"), tmp_path / "policy.json")
    trot = evaluate("trot", tmp_path / "trot.json")
    summary = (
        f"BC policy {policy['mean_forward_speed_mps']:.3f} m/s, {policy['falls']} falls; "
        f"trot {trot['mean_forward_speed_mps']:.3f} m/s, {trot['falls']} falls"
    )
    # Which of five randomised episodes falls changes with the CPU (on these seeds the BC policy
    # fell in none on an Intel Xeon, in one on an AMD EPYC, where the trot fell in one too; likely
    # rounding, as for the trot in tests/sim/test_env.py): one fall is chance; more, and more than
    # the trot's, is not walking like it.
    assert policy["falls"] <= max(1, trot["falls"]), summary
    assert policy["mean_forward_speed_mps"] > 0.1, summary
    assert policy["mean_forward_speed_mps"] > 0.75 * trot["mean_forward_speed_mps"], summary
