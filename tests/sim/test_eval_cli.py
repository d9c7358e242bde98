"""pidog-eval: summary, JSON with the documented keys, video, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EVAL = [sys.executable, "-m", "pidog_learning.eval_cli"]


def test_eval_trot_writes_json_and_video(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *EVAL,
            "--controller",
            "trot",
            "--episodes",
            "2",
            "--seconds",
            "3",
            "--seed",
            "3",
            "--json",
            str(tmp_path / "e.json"),
            "--video",
            str(tmp_path / "e.mp4"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    for key in (
        "episodes",
        "mean_forward_speed_mps",
        "std_forward_speed_mps",
        "falls",
        "mean_return",
        "mean_distance_m",
    ):
        assert key in result
    assert result["episodes"] == 2 and result["mean_forward_speed_mps"] > 0.03
    assert "m/s" in out.stdout
    assert (tmp_path / "e.mp4").stat().st_size > 10_000


def test_eval_bad_controller_and_budget(tmp_path: Path) -> None:
    out = subprocess.run(
        [*EVAL, "--controller", str(tmp_path / "missing.onnx")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "missing.onnx" in out.stderr
    out = subprocess.run([*EVAL, "--episodes", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--episodes" in out.stderr
