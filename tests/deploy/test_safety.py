"""The safety layer tick by tick: soft start, rate limit, watchdog, fall stop, estop, NaN hold."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_control.safety import SafetyConfig, SafetyConfigError, SafetyLayer, SafetyState, SensorTimes
from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.robot import JOINT_UPPER, SERVO_MAX_SPEED
from pidog_description.topics import JOINT_STATES_TOPIC

DT = 0.02
UPRIGHT = np.array([0.0, 0.0, -1.0])
ROLLED = np.array([0.0, -np.sin(1.0), -np.cos(1.0)])  # 1 rad roll


class Clock:
    """Drives a SafetyLayer with fresh sensors every tick unless told otherwise."""

    def __init__(self, layer: SafetyLayer, pose: np.ndarray) -> None:
        self.layer, self.pose, self.now = layer, pose, 100.0
        self.times = SensorTimes(joints=self.now, imu=self.now)

    def tick(self, target=None, gravity=UPRIGHT, estop=False, fresh=True, have_policy=True, idle=False):
        self.now += DT
        if fresh:
            self.times.joints = self.times.imu = self.now
        state = self.layer.update(self.now, self.times, self.pose, gravity, estop, have_policy, idle)
        return state, self.layer.command(target)


def test_soft_start_ramps_from_the_measured_pose_to_stand_then_hands_over() -> None:
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=1.0))
    clock = Clock(layer, LIE_POSE)
    commands = []
    state, cmd = clock.tick()
    while state == SafetyState.SOFT_START:
        commands.append(cmd)
        state, cmd = clock.tick(target=STAND_POSE + 0.1)
    assert state == SafetyState.RUNNING
    assert len(commands) == pytest.approx(1.0 / DT, abs=1)
    np.testing.assert_allclose(commands[-1], STAND_POSE, atol=1e-9)
    assert np.abs(commands[0] - LIE_POSE).max() < SERVO_MAX_SPEED * DT + 1e-9
    np.testing.assert_allclose(cmd, STAND_POSE + 0.1, atol=1e-9)


def test_commands_are_rate_limited_and_clamped_and_nan_holds() -> None:
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.0))
    clock = Clock(layer, STAND_POSE)
    state, cmd = clock.tick(target=STAND_POSE + 2.0)
    assert state == SafetyState.RUNNING
    np.testing.assert_allclose(cmd - STAND_POSE, SERVO_MAX_SPEED * DT)
    for _ in range(50):
        _, cmd = clock.tick(target=STAND_POSE + 2.0)
    np.testing.assert_allclose(cmd, JOINT_UPPER)
    _, held = clock.tick(target=np.full(8, np.nan))
    np.testing.assert_allclose(held, cmd)
    _, held = clock.tick(target=None)
    np.testing.assert_allclose(held, cmd)


def test_watchdog_fall_and_estop_stop_the_policy_and_recover_through_soft_start() -> None:
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.1, sensor_timeout_s=0.1, fall_recovery_s=0.2))
    clock = Clock(layer, STAND_POSE)
    assert clock.tick(fresh=False, have_policy=True)[0] == SafetyState.SOFT_START
    for _ in range(10):
        state, cmd = clock.tick(target=STAND_POSE + 0.05)
    assert state == SafetyState.RUNNING
    # Silence: after the timeout the pose is held and the policy's target ignored.
    silent_ticks = 0
    while state == SafetyState.RUNNING:
        before = cmd
        state, cmd = clock.tick(target=STAND_POSE - 0.3, fresh=False)
        silent_ticks += 1
    assert state == SafetyState.STALE and JOINT_STATES_TOPIC in layer.reason
    assert silent_ticks == pytest.approx(0.1 / DT + 1, abs=1)
    for _ in range(5):
        _, held = clock.tick(target=STAND_POSE - 0.3, fresh=False)
        np.testing.assert_allclose(held, before)
    assert clock.tick()[0] == SafetyState.SOFT_START
    # A fall latches until the robot has been upright for fall_recovery_s.
    for _ in range(10):
        clock.tick(target=STAND_POSE)
    assert clock.tick(gravity=ROLLED)[0] == SafetyState.FALLEN
    ticks_upright = 0
    while clock.tick()[0] == SafetyState.FALLEN:
        ticks_upright += 1
    assert ticks_upright == pytest.approx(0.2 / DT, abs=1)
    # estop publishes nothing at all.
    state, cmd = clock.tick(estop=True)
    assert state == SafetyState.ESTOP and cmd is None


def test_stale_check_notices_silence_between_ticks() -> None:
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.0, sensor_timeout_s=0.1))
    clock = Clock(layer, STAND_POSE)
    clock.tick()
    assert layer.stale_check(clock.now + 0.05, clock.times) == SafetyState.RUNNING
    assert layer.stale_check(clock.now + 0.5, clock.times) == SafetyState.STALE


def test_standing_without_policy() -> None:
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.0))
    state, cmd = Clock(layer, STAND_POSE).tick(have_policy=False)
    assert state == SafetyState.NO_POLICY
    np.testing.assert_allclose(cmd, STAND_POSE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("soft_start_s", -1.0),
        ("sensor_timeout_s", 0.0),
        ("max_tilt_rad", float("nan")),
        ("fall_recovery_s", -2.0),
    ],
)
def test_invalid_settings_name_the_parameter(field: str, value: float) -> None:
    with pytest.raises(SafetyConfigError, match=f"'{field}'"):
        SafetyConfig(**{field: value})


def test_a_held_zero_command_stands_the_robot_still_and_the_next_command_walks() -> None:
    """stand_after_s: after that long at (0, 0) the policy's treading gives way to a ramp to the
    stand pose, held; a non-zero command hands back to the policy at once. Off (0): never."""
    layer = SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.5, stand_after_s=1.0))
    clock = Clock(layer, STAND_POSE)
    treading = STAND_POSE + 0.15
    for _ in range(100):  # soft start, then walking: a non-zero command never stands
        state, cmd = clock.tick(target=treading)
    assert state == SafetyState.RUNNING
    np.testing.assert_allclose(cmd, treading)

    ticks = 0
    while state == SafetyState.RUNNING:
        state, cmd = clock.tick(target=treading, idle=True)
        ticks += 1
    assert state == SafetyState.STANDING and ticks * DT == pytest.approx(1.0, abs=DT)
    ramp = [cmd]
    for _ in range(int(0.5 / DT) + 10):
        state, cmd = clock.tick(target=treading, idle=True)
        ramp.append(cmd)
    assert state == SafetyState.STANDING
    np.testing.assert_allclose(ramp[0], treading)  # from where the policy left the legs
    assert np.all(np.diff(np.abs(np.array(ramp) - STAND_POSE).max(axis=1)) <= 1e-12)  # steadily closer
    np.testing.assert_allclose(cmd, STAND_POSE, atol=1e-9)  # then held

    state, cmd = clock.tick(target=treading)  # the next command walks at once
    assert state == SafetyState.RUNNING
    assert np.all((cmd - STAND_POSE) * (treading - STAND_POSE) > 0)  # toward the policy's target

    # Standing survives an e-stop: released, the robot soft-starts and, still idle, stands again.
    for _ in range(60):
        state, cmd = clock.tick(target=treading, idle=True)
    assert state == SafetyState.STANDING
    state, cmd = clock.tick(target=treading, idle=True, estop=True)
    assert state == SafetyState.ESTOP and cmd is None
    states = [clock.tick(target=treading, idle=True)[0] for _ in range(int(0.5 / DT) + 2)]
    assert states[0] == SafetyState.SOFT_START and states[-1] == SafetyState.STANDING

    never = Clock(SafetyLayer(SafetyConfig(dt=DT, soft_start_s=0.0)), STAND_POSE)
    for _ in range(500):
        state, _ = never.tick(target=treading, idle=True)
    assert state == SafetyState.RUNNING


def test_stand_after_s_is_checked_by_name() -> None:
    with pytest.raises(SafetyConfigError, match="stand_after_s"):
        SafetyConfig(stand_after_s=-1.0)
