"""bench_robustness's one-line verdict on a candidate (--targets-only), in the cases a user meets."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from benchmarks import bench_robustness as br


def _result(nominal_speed: float, nominal_falls: int) -> dict:
    """A chart of two cells: the nominal robot and a weak, heavy one."""
    strength, latency, mass = br.nominal_cell(0.97)
    rows = [
        {
            "strength": strength,
            "latency": latency,
            "mass": mass,
            "falls": nominal_falls,
            "speed": nominal_speed,
        },
        {"strength": 0.25, "latency": 2, "mass": 1.15, "falls": 0, "speed": 0.1},
    ]
    for r in rows:
        r["ratio"] = r["speed"] / nominal_speed
        r["drift"] = 0.0
    return {"rows": rows, "total_mass": 0.97, "nominal_speed": nominal_speed, "command_vx": 0.2}


def test_a_policy_that_walks_is_judged_against_its_nominal_speed() -> None:
    line = br.target_summary(_result(0.2, 0), "candidate.onnx")
    assert "(0.200 m/s at 0.2 commanded)" in line
    assert "in 1 of 2 target cells" in line and "0.25N·m/lat2/1.15kg:0.50x" in line


def test_a_policy_that_falls_on_the_nominal_robot_is_told_so_not_nan() -> None:
    line = br.target_summary(_result(math.nan, 4), "candidate.onnx")
    assert "none: it fell in all 4 episodes on the nominal robot at 0.2 m/s" in line
    assert "in 0 of 2 target cells" in line
    assert "0.25N·m/lat2/1.15kg:0.100m/s" in line  # the cell's own speed: there is no ratio
    assert "nan" not in line


def _full_result(nominal_speed: float) -> dict:
    """Every cell of the chart: the nominal robot at ``nominal_speed`` (nan: all 4 fell), the
    weakest servos on the heaviest body all fell, every other cell walks 0.1 m/s."""
    total_mass = 0.97
    masses = tuple(total_mass if m is None else m for m in br.MASSES_KG)
    nominal = br.nominal_cell(total_mass)
    rows = []
    for strength, latency, mass in itertools.product(br.STRENGTHS_NM, br.LATENCIES, masses):
        cell = (strength, latency, mass)
        speed = nominal_speed if cell == nominal else math.nan if (strength, mass) == (0.2, 1.2) else 0.1
        rows.append(
            {
                "strength": strength,
                "latency": latency,
                "mass": mass,
                "falls": 0 if math.isfinite(speed) else 4,
                "speed": speed,
                "slowest": speed,
                "drift": 0.0 if math.isfinite(speed) else math.nan,
                "saturated": 0.5 if math.isfinite(speed) else math.nan,
                "ratio": speed / nominal_speed,
            }
        )
    return {
        "rows": rows,
        "total_mass": total_mass,
        "masses": masses,
        "nominal_speed": nominal_speed,
        "command_vx": 0.2,
        "robots": len(rows) * 4,
        "threads": 1,
        "wall_s": 1.0,
        "imu_orientation": "noisy_truth",
        "noise_seed": br.NOISE_SEED,
    }


def test_the_page_of_a_policy_that_falls_on_the_nominal_robot_gives_speeds_not_nan(tmp_path: Path) -> None:
    result = _full_result(math.nan)
    page = br.report(result, episodes=4, seconds=12.0, png="chart.png", policy="candidate.onnx")
    assert "nan" not in page
    assert "none: it fell in all 4 episodes on the nominal robot" in page
    # The table: cells that walked give their own speed, the cells where every episode fell say so.
    assert "| 0 | 0.25 | **0.100m/s** | **0.100m/s** |" in page
    assert "Cells: speed (the nominal robot fell)" in page
    assert (
        "| 0 | 0.20 | **0.100m/s** | **0.100m/s** | **0.100m/s** | **0.100m/s** | **0.100m/s** | **all fell** |"
        in page
    )
    # The failing list gives a walking cell's speed in m/s, with no share of a nominal it lacks.
    assert "- 0.25 N·m, latency 0, 0.85 kg: speed 0.100 m/s, slowest episode 0.100," in page
    assert "worst all fell (0.20 N·m, 1.20 kg)" in page

    # The failing cells walked again at the fastest command: those that fell there say so too.
    fast = _full_result(math.nan)
    result["fast"] = {"rows": fast["rows"], "command_vx": 0.3}
    page = br.report(result, episodes=4, seconds=12.0, png="chart.png", policy="candidate.onnx")
    assert "nan" not in page
    assert "commanded 0.3 m/s: 0.100 m/s" in page and "commanded 0.3 m/s: all fell" in page

    br.plot(result, tmp_path / "chart.png", policy="candidate.onnx")
    assert (tmp_path / "chart.png").stat().st_size > 10_000


def test_the_page_of_a_policy_that_walks_keeps_its_shares_of_nominal() -> None:
    page = br.report(_full_result(0.2), episodes=4, seconds=12.0, png="chart.png", policy="candidate.onnx")
    assert "| 0 | 0.25 | **0.50** | **0.50** |" in page  # below 70 %: bold
    assert "- 0.25 N·m, latency 0, 0.85 kg: speed 0.50 × nominal (0.100 m/s, slowest episode 0.100)" in page
    assert "| 0 | 0.35 | **0.50** | **0.50** | 1.00 |" in page  # the nominal cell


def _draw(seed: int, weak_speed: float, weak_falls: int = 0) -> dict:
    """One noise draw of the two-cell chart (both in the target range): the weak, heavy cell walks
    ``weak_speed``, the nominal robot 0.2 m/s."""
    result = _result(0.2, 0)
    weak = result["rows"][1]
    weak.update(speed=weak_speed, ratio=weak_speed / 0.2, falls=weak_falls)
    result["noise_seed"] = seed
    return result


def test_several_draws_sum_up_to_the_cells_kept_per_draw_and_how_often_each_cell_failed() -> None:
    line = br.draws_summary(
        [_draw(1000, 0.15), _draw(2000, 0.1), _draw(3000, 0.15, weak_falls=1)], "candidate.onnx"
    )
    assert "over 3 noise draws (seeds 1000, 2000, 3000)" in line
    assert "cells kept 2 / 1 / 1 of 2 (falls 0 / 0 / 1)" in line
    assert "failing at some draw: 0.25N·m/lat2/1.15kg:2/3" in line

    line = br.draws_summary([_draw(1000, 0.15), _draw(2000, 0.16)], "candidate.onnx")
    assert "cells kept 2 / 2 of 2 (falls 0 / 0); no cell failed at any draw" in line


def test_several_draws_are_refused_for_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --results-dir: were the refusal gone, the page would land there, not over the shipped one.
    with pytest.raises(SystemExit) as exc:
        br.main(["--seed", "1000", "2000", "--results-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--seed: one noise draw for the page; several only with --targets-only" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
