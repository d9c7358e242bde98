"""Evaluation: heading-frame speed, paired episodes, confidence intervals, the tracking grid and
gait quality, measured on the real MuJoCo sim."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.spec import ACTION_DIM, FREEFALL_S, LIFT_ACCEL_MPS2
from pidog_sim.controllers import TrotController
from pidog_sim.env import PiDogEnv
from pidog_sim.evaluation import (
    TRACKING_GRID,
    GaitMeter,
    evaluate,
    evaluate_tracking,
    mean_ci,
    paired_difference,
    tracking_table,
)


def test_confidence_interval_and_paired_difference() -> None:
    mean, ci = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and ci == pytest.approx(4.303 / np.sqrt(3), rel=1e-3)
    assert np.isnan(mean_ci([1.0])[1])
    diff = paired_difference([1.0, 2.0, 3.0, 4.0], [0.5, 1.4, 2.6, 3.5])
    assert diff["mean"] == pytest.approx(0.5) and diff["significant"]
    assert not paired_difference([1.0, 2.0, 3.0], [2.0, 1.0, 3.0])["significant"]
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0], [1.0, 2.0])


def test_speed_is_measured_along_the_heading_not_along_world_x() -> None:
    """An arc covers distance at walking speed while its world-x displacement stays small."""
    result = evaluate(TrotController(), episodes=1, seconds=15.0, randomize=False, seed=0, command=(0.1, 0.3))
    displacement_speed = abs(result["mean_distance_m"]) / result["mean_episode_seconds"]
    assert result["mean_yaw_rate_radps"] > 0.15  # more than half a circle in 15 s
    assert result["mean_forward_speed_mps"] > 0.03
    assert result["mean_forward_speed_mps"] > 2.0 * displacement_speed


def test_episodes_are_paired_and_reproducible_with_a_confidence_interval() -> None:
    first = evaluate(TrotController(), episodes=3, seconds=2.0, randomize=True, seed=7)
    again = evaluate(TrotController(), episodes=3, seconds=2.0, randomize=True, seed=7)
    assert first["per_episode_speed_mps"] == again["per_episode_speed_mps"]
    assert first["per_episode_return"] == again["per_episode_return"]
    assert np.isfinite(first["ci95_forward_speed_mps"]) and first["ci95_forward_speed_mps"] > 0
    other = evaluate(TrotController(), episodes=3, seconds=2.0, randomize=True, seed=8)
    assert other["per_episode_return"] != first["per_episode_return"]
    same = paired_difference(first["per_episode_return"], again["per_episode_return"])
    assert same["mean"] == 0.0 and not same["significant"]


def test_tracking_grid_covers_every_kind_of_command() -> None:
    grid = np.array(TRACKING_GRID)
    assert len(grid) >= 20
    assert any((grid[:, 0] == 0) & (grid[:, 1] == 0))  # standing
    assert any(grid[:, 0] < 0)  # backward
    assert any((grid[:, 0] == 0) & (grid[:, 1] > 0)) and any((grid[:, 0] == 0) & (grid[:, 1] < 0))  # in place
    assert any((grid[:, 0] != 0) & (grid[:, 1] != 0))  # arcs


def test_tracking_reports_velocities_errors_and_gait_quality() -> None:
    commands = [(0.15, 0.0), (-0.1, 0.0), (0.0, 0.6)]
    trot = evaluate_tracking(
        TrotController(), commands, seconds=5.0, randomize=False, seed=0, settle_seconds=1.0
    )
    rows = trot["commands"]
    assert [(r["command_vx"], r["command_wz"]) for r in rows] == commands
    assert rows[0]["vx"] > 0.08 and rows[1]["vx"] < -0.05 and rows[2]["wz"] > 0.15
    assert trot["falls"] == 0 and trot["episodes"] == 3
    errors_vx = np.mean([abs(r["vx"] - r["command_vx"]) for r in rows])
    assert trot["mean_abs_vx_error"] == pytest.approx(errors_vx)
    assert 5.0 < trot["median_clearance_mm"] < 40.0  # the trot lifts its feet ~20 mm
    assert 0.0 < trot["mean_stance_slip_mps"] < 0.2
    assert 0.5 < trot["cost_of_transport"] < 50.0
    # Gait quality per command pools to the overall figures: the same stance samples, split by
    # command; each of these commands swings its feet.
    samples = np.array([r["stance_samples"] for r in rows])
    assert samples.min() > 0
    pooled_slip = np.average([r["stance_slip_mps"] for r in rows], weights=samples)
    assert pooled_slip == pytest.approx(trot["mean_stance_slip_mps"])
    assert all(5.0 < r["median_clearance_mm"] < 40.0 and r["swings"] > 0 for r in rows)
    table = "\n".join(tracking_table({"trot": trot}))
    assert "| trot |" in table and "-0.10, +0.0" in table
    back = rows[1]
    backing = (
        f"| -0.10, +0.0 | {back['stance_slip_mps']:.3f}, {back['median_clearance_mm']:.1f}, "
        f"{back['chatter_per_foot_s']:.2f} |"
    )
    assert backing in table, table

    # Standing on the stand pose: no swings, (almost) no slip, nothing transported.
    stand = evaluate_tracking(
        lambda obs: np.zeros(ACTION_DIM, dtype=np.float32),
        [(0.0, 0.0)],
        seconds=3.0,
        randomize=False,
        settle_seconds=1.0,
    )
    assert np.isnan(stand["median_clearance_mm"]) and stand["mean_stance_slip_mps"] < 0.01
    assert stand["commands"][0]["swings"] == 0 and stand["commands"][0]["stance_slip_mps"] < 0.01
    assert np.isnan(stand["cost_of_transport"])  # commanded below COT_MIN_SPEED: no CoT
    assert stand["low_g_percent"] == 0.0 and stand["longest_low_g_s"] == 0.0
    # The trot keeps a foot on the ground: its body is never thrown for long.
    assert trot["longest_low_g_s"] < FREEFALL_S, trot["longest_low_g_s"]
    # Nor does hw_node's lift test see a walking or a standing robot as picked up, though the
    # trot's footfalls, read at 100 Hz, push a window's mean to about the threshold (measured:
    # 2.71 m/s^2 against 2.5; the mean alone would have latched).
    assert trot["lift_trips"] == 0 and trot["max_lift_mean_mps2"] > 0.5 * LIFT_ACCEL_MPS2, trot
    assert stand["lift_trips"] == 0 and abs(stand["max_lift_mean_mps2"]) < 0.5, stand


STILL = np.zeros(ACTION_DIM, dtype=np.float32)


def standing_robot_and_meter() -> tuple[PiDogEnv, GaitMeter]:
    """A robot standing still on the floor, and a GaitMeter that has watched it for 0.5 s."""
    env = PiDogEnv(randomize=False)
    env.reset(seed=0)
    for _ in range(25):  # a reset places the robot just above the floor: let it land first
        env.step(STILL)
    gait = GaitMeter(env.sim.model)
    gait.start()
    for _ in range(25):
        env.step(STILL)
        gait.update(env.sim.batch)
    return env, gait


def meter_after_a_lift(height: float, steps: int) -> GaitMeter:
    """The meter of a standing robot raised by ``height`` m and let fall, watched ``steps``
    control steps more (after its 25 standing ones)."""
    env, gait = standing_robot_and_meter()
    env.sim.batch.qpos[0, 2] += height
    for _ in range(steps):
        env.step(STILL)
        gait.update(env.sim.batch)
    env.close()
    return gait


def test_a_dropped_robot_reads_low_g_for_as_long_as_it_falls_and_the_table_flags_it() -> None:
    """hw_node's free-fall check in the evaluation: the accelerometer of a robot dropped from
    0.3 m reads ~0 for the 0.25 s of the fall, which the table marks as what would stop the robot."""
    env, standing = standing_robot_and_meter()
    env.close()
    assert standing.summary()["low_g_percent"] == 0.0
    gait = meter_after_a_lift(0.3, 50)
    physics_dt = float(gait.model.opt.timestep)
    summary = gait.summary()
    fall_s = np.sqrt(2 * 0.3 / 9.81)
    assert fall_s - 0.02 <= summary["longest_low_g_s"] <= fall_s + 0.02, summary
    # Timed at every 2 ms physics step of the 75 control steps (10 each), not at 50 Hz.
    assert len(gait.low_g_runs) == 1 and summary["low_g_percent"] == pytest.approx(
        100 * summary["longest_low_g_s"] / physics_dt / 750
    )
    result = evaluate_tracking(
        lambda obs: STILL, [(0.0, 0.0)], seconds=1.0, randomize=False, settle_seconds=0.5
    )
    assert "free fall" not in "\n".join(tracking_table({"still": result}))
    result.update(low_g_percent=summary["low_g_percent"], longest_low_g_s=summary["longest_low_g_s"])
    assert "**(hw_node: free fall)**" in "\n".join(tracking_table({"dropped": result}))


def test_a_hop_of_a_few_millimetres_is_chatter_and_a_drop_is_a_swing() -> None:
    """Chatter: each foot of a standing robot raised 4 mm falls back within two control
    periods, a hop of one 20 ms sample that lands sliding in a trained policy's stance; dropped
    from 0.3 m, its feet are in the air for 0.25 s: swings with a clearance, no chatter."""
    hop = meter_after_a_lift(0.004, 40)
    assert hop.chatters == 4 and not hop.clearances, (hop.chatters, hop.clearances)
    # per foot and second over the 65 watched control steps
    assert hop.summary()["chatter_per_foot_s"] == pytest.approx(4 / (4 * 65 * 0.02))
    drop = meter_after_a_lift(0.3, 40)
    # (the four feet's fall, then a bounce of a few millimetres that lasts long enough to count)
    assert drop.chatters == 0 and min(sorted(drop.clearances)[-4:]) > 0.2, drop.clearances


def test_a_robot_lifted_by_a_hand_trips_the_lift_test_once_and_the_table_flags_it() -> None:
    """hw_node's lift test in the evaluation: a standing robot pulled up by a force of its weight
    plus 4 m/s^2 of its mass (a hand lifting it) trips it once, on the accelerometer read as
    hw_node reads it."""
    env, gait = standing_robot_and_meter()
    assert gait.lift_trips == 0
    batch = env.sim.batch
    mass = float(np.sum(env.sim.model.body_mass))
    batch._push_force[0] = [0.0, 0.0, mass * (9.81 + 4.0)]  # held until the end of the test
    batch._push_end[0] = np.inf
    for _ in range(25):  # 0.5 s
        env.step(STILL)
        gait.update(env.sim.batch)
    env.close()
    summary = gait.summary()
    assert summary["lift_trips"] == 1 and summary["max_lift_mean_mps2"] > 3.0, summary
    result = evaluate_tracking(
        lambda obs: STILL, [(0.0, 0.0)], seconds=1.0, randomize=False, settle_seconds=0.5
    )
    assert "picked up" not in "\n".join(tracking_table({"still": result}))
    result.update(lift_trips=1, max_lift_mean_mps2=summary["max_lift_mean_mps2"])
    assert "**(hw_node: picked up, 1x)**" in "\n".join(tracking_table({"lifted": result}))
