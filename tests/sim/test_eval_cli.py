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


def test_eval_grid_prints_the_tracking_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *EVAL,
            "--grid",
            "--episodes",
            "1",
            "--seconds",
            "2",
            "--settle-seconds",
            "1",
            "--no-randomize",
            "--json",
            str(tmp_path / "grid.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "grid.json").read_text())
    assert len(result["commands"]) >= 20
    for key in (
        "mean_abs_vx_error",
        "mean_abs_wz_error",
        "falls",
        "median_clearance_mm",
        "cost_of_transport",
    ):
        assert key in result
    assert "| trot |" in out.stdout and "-0.15, +0.0" in out.stdout and "+0.00, +1.0" in out.stdout
    bad = subprocess.run([*EVAL, "--grid", "--seconds", "1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--settle-seconds" in bad.stderr
