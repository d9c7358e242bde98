"""bench_matched_slip: the commands it derives from the gait's grid, and how it reads the match."""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_matched_slip as bm


def _grid(rows: list[tuple[float, float, float, float]]) -> dict:
    """A grid result: (command vx, command wz, achieved vx, achieved wz) per cell."""
    return {
        "commands": [
            {"command_vx": cv, "command_wz": cw, "vx": vx, "wz": wz, "stance_slip_mps": 0.05}
            for cv, cw, vx, wz in rows
        ]
    }


def test_each_command_becomes_the_motion_the_gait_achieved_and_a_fallen_cell_keeps_its_own() -> None:
    gait = _grid([(0.2, 0.5, 0.0831, 0.1449), (0.0, 1.0, -0.02, 0.21), (0.3, 0.0, math.nan, math.nan)])
    assert bm.matched_commands(gait) == [(0.083, 0.145), (-0.02, 0.21), (0.3, 0.0)]


def test_the_motion_gap_is_read_over_the_cells_both_walked() -> None:
    gait = _grid([(0.2, 0.5, 0.08, 0.14), (0.0, 1.0, -0.02, 0.21), (0.3, 0.0, 0.1, 0.0)])
    policy = _grid([(0.08, 0.14, 0.10, 0.10), (-0.02, 0.21, -0.02, 0.31), (0.1, 0.0, math.nan, math.nan)])
    vx, wz = bm.motion_gap(policy, gait)
    assert vx == pytest.approx(0.01) and wz == pytest.approx(0.07)
