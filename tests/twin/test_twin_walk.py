"""Issue 17: the deploy path closed around physics. The shipped policy drives hw_node, whose
drivers write I2C registers that the twin turns into simulated servo motion and whose IMU reads
come from the simulated IMU site; compared with the same policy through sim_node, both judged
by ground-truth odometry on sim time. Then the mistakes the twin exists for, one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twin_graph import Run, run_sim_node, run_twin

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WINDOW_S = 7.0  # sim-time seconds of the forward window (after 1 s of settling)
TURN_WINDOW_S = 16.0  # and of the turn window: 7 s judged the turn by too few strides (below)
FAULT_WINDOW_S = 5.0  # the faults are blatant: a shorter look keeps tests/twin near 2 min
# One run each, so the bounds include the shipped policy's own run-to-run spread over DDS.
# The policy shipped on 2026-12-03, 9 pairs with the filter on both sides and 7 s turn windows:
# turn 0.89-1.21, mean 1.06, forward 1.09-1.29. Likely why: the twin answers 0-1 control tick later
# than sim_node (policy_node and hw_node run on unsynchronised wall-clock timers), and this policy
# turns and walks ~10 % faster at one tick of latency (docs/benchmarks/deploy_gap.md). A CI run
# (2026-12-05) then read a turn of 1.32; 14 more pairs that day with 7 s windows: turn 0.76-1.13
# (twin 3.9-6.1 rad, sim_node 5.1-5.7), but in 5 twin runs each 4 s quarter of a 16 s turn
# window stayed within 11 % of its run's mean: 7 s judged the turn by too few strides. With 16 s turn
# windows and the reference in lockstep (as in training, unmoved by the machine's load), 11 pairs:
# turn 0.89-1.09, forward 1.03-1.20. The band still catches what it caught before: a harness bug
# that read 0.40 (docs/TWIN.md); wiring faults stop the walk. The forward band is wide because an
# earlier policy's reference once walked 1.22 m where it usually walked 1.9-2.1 (docs/TWIN.md).
# The policy shipped on 2026-12-06 turns less evenly through the twin: a CI run read 1.26 (twin
# 10.82 rad, sim_node 8.60); 10 more pairs that day, 6 alone and 4 beside a busy core as CI's
# second worker is: turn 0.91-1.13, twin 8.07-10.02 rad, sim_node 8.22-9.11 (the worst pairing of
# those twin and reference runs: 1.32). The band was 35 % then; a harness bug read 0.40 and the wiring
# faults stop the walk, all far outside it. The policy shipped on 2026-12-07, on a 2-core AMD EPYC,
# 8 pairs (one of them a CI run): the twin turned more in every pair, 1.05-1.39x (twin 9.07-10.69
# rad, sim_node 7.59-9.62), as the tick of latency predicts; 2 of the 8 past 1.35. So the band is
# lopsided now, like the forward one: the twin may turn up to 1.6x the reference, down to 0.65x.
TURN_BAND = (0.65, 1.6)
FORWARD_BAND = (0.5, 2.0)
REFERENCE: dict[str, Run] = {}  # the sim_node run, shared with the fault cases


def reference(spawn_node, probe) -> Run:
    if "sim" not in REFERENCE:  # the fault cases run on their own (-k): measure it here
        REFERENCE["sim"] = run_sim_node(spawn_node, probe, WINDOW_S)
    return REFERENCE["sim"]


def test_shipped_policy_walks_and_turns_through_hw_node_and_the_twin_like_through_sim_node(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    sim = REFERENCE["sim"] = run_sim_node(spawn_node, ros_probe, WINDOW_S, TURN_WINDOW_S)
    twin = run_twin(spawn_node, ros_probe, tmp_path, WINDOW_S, TURN_WINDOW_S)
    report = f"sim_node: {sim}\ntwin:     {twin}"
    print(report)
    assert not sim.fell and not twin.fell, report
    assert sim.forward_m > 0.3 and sim.yaw_rad > 0.5, f"the reference itself does not walk and turn\n{report}"
    assert TURN_BAND[0] * sim.yaw_rad <= twin.yaw_rad <= TURN_BAND[1] * sim.yaw_rad, report
    assert FORWARD_BAND[0] * sim.forward_m <= twin.forward_m <= FORWARD_BAND[1] * sim.forward_m, report
    # Through the driver's registers, remap and filter, the IMU still tells the truth.
    assert twin.gyro_corr is not None and min(twin.gyro_corr) > 0.8, report


# Each mistake, how it is injected, and how the twin shows it.
FAULTS: dict[str, dict[str, Any]] = {
    # The left-front hip servo turns the other way (a sign flipped in the servo map).
    "flipped_servo_sign": {"control": {"servo_reversed": ["lf_hip"]}},
    # The left-hind hip and knee plugs swapped (channels 0 and 1).
    "swapped_channels": {"control": {"servo_channels": {"lh_hip": 1, "lh_knee": 0}}},
    # The chip's axes taken as the body's (no remap): gravity reads along body -x, hw_node
    # sees the robot on its nose, latches 'fallen' and refuses to arm.
    "imu_axes_not_remapped": {"hw_params": {"imu_axes": "x,y,z"}},
    # The remap turned by 180 deg about the vertical: up is right, forward and left reversed,
    # so roll and pitch (and their rates) read with the wrong sign. The forward sign is the
    # part of the default remap inferred from the SDK, not measured (docs/HARDWARE.md).
    "imu_axes_forward_reversed": {"hw_params": {"imu_axes": "y,-z,-x"}},
}


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "imu_axes_forward_reversed"])
def test_a_wiring_or_remap_mistake_stops_the_robot_walking(
    fault: str, tmp_path: Path, spawn_node, ros_probe
) -> None:
    ref = reference(spawn_node, ros_probe)
    run = run_twin(spawn_node, ros_probe, tmp_path, FAULT_WINDOW_S, **FAULTS[fault])
    report = f"{fault}: {run}\nsim_node reference: {ref}"
    print(report)
    # Fell (now or while standing up), or under half the reference's speed (the reference
    # measured 0.68-1.41 m in 7 s).
    assert run.fell or run.forward_m / FAULT_WINDOW_S < 0.5 * ref.forward_m / WINDOW_S, (
        f"the twin did not catch it\n{report}"
    )


def test_a_reversed_imu_forward_axis_shows_as_imu_rates_against_the_ground_truth(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    """With roll and pitch reversed a policy may walk on (the one shipped until 2026-12-06 did:
    it hardly used their sign) or fall (the one shipped since fell in 4 of 7 runs, once before a
    second of walking), so walking alone cannot be relied on to catch this mistake; the twin's
    ground truth can: /imu/data's roll and pitch rates run against the body's true ones whenever
    there is a second of walking to compare, and a fall before that shows the mistake anyway."""
    run = run_twin(spawn_node, ros_probe, tmp_path, FAULT_WINDOW_S, **FAULTS["imu_axes_forward_reversed"])
    print(f"imu_axes_forward_reversed: {run}")
    if run.gyro_corr is None:
        assert run.fell, f"neither a fall nor a second of walking to compare\n{run}"
    else:
        assert max(run.gyro_corr) < -0.5, f"the twin did not catch it\n{run}"
