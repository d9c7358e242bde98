"""bench_robustness's one-line verdict on a candidate (--targets-only), in the cases a user meets."""

from __future__ import annotations

import math

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
