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


def test_eval_set_changes_the_simulated_floor_and_refuses_bad_options_by_name(tmp_path: Path) -> None:
    """--set env.KEY=VALUE: the simulator's options, as pidog-train takes them. A grippier floor
    (a 5 ms contact, the model's 20) changes how the trot walks; a bad key or value is refused
    by name before any episode runs, and nothing is written."""

    def run(*extra: str, out: str = "e.json") -> subprocess.CompletedProcess:
        return subprocess.run(
            [*EVAL, "--controller", "trot", "--no-randomize", "--episodes", "1", "--seconds", "3"]
            + ["--json", str(tmp_path / out), *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert run(out="model.json").returncode == 0
    stiff = run("--set", "env.nominal.contact_timeconst=0.005", out="stiff.json")
    assert stiff.returncode == 0, stiff.stderr
    model = json.loads((tmp_path / "model.json").read_text())
    stiff_result = json.loads((tmp_path / "stiff.json").read_text())
    assert stiff_result["mean_forward_speed_mps"] != model["mean_forward_speed_mps"]
    for bad, named in [
        ("env.nominal.contact_timeconst=0.001", "nominal.contact_timeconst"),
        ("env.nominal.stiffness=1", "'env.nominal.stiffness'"),
        ("ppo.n_steps=256", "ppo"),
    ]:
        out = run("--set", bad, out="bad.json")
        assert out.returncode == 2 and named in out.stderr, (bad, out.stderr)
        assert not (tmp_path / "bad.json").exists()
