"""teleop_gait_node: the control law, and the node as a process driven over DDS."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pidog_control.teleop_gait_node import RampLimits, TeleopGait
from pidog_description.kinematics import STAND_POSE, joints_to_feet
from pidog_description.robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from pidog_description.spec import COMMAND_LIMITS, CONTROL_DT, GAIT_PERIOD_S, seconds_to_steps
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    ESTOP_TOPIC,
    GAIT_PHASE_TOPIC,
    JOINT_COMMANDS_TOPIC,
    LATCHED_QOS,
)

REPO = Path(__file__).resolve().parents[2]
PHASE_STEP = CONTROL_DT / GAIT_PERIOD_S


def run_law(gait: TeleopGait, command, ticks: int) -> tuple[np.ndarray, np.ndarray]:
    out = [gait.tick(np.asarray(command, dtype=float)) for _ in range(ticks)]
    return np.array([q for q, _ in out]), np.array([p for _, p in out])


# --- the control law ---------------------------------------------------------------------------


def test_idle_gait_stands_still_while_its_clock_runs() -> None:
    gait = TeleopGait(0.02, RampLimits())
    q, phase = run_law(gait, [0.0, 0.0], 30)
    np.testing.assert_allclose(q, np.tile(STAND_POSE, (30, 1)), atol=1e-12)
    np.testing.assert_allclose(np.mod(np.diff(phase), 1.0), PHASE_STEP, atol=1e-9)


def test_walking_starts_at_phase_zero_and_ramps_within_the_limits() -> None:
    limits = RampLimits(linear_accel=0.5, angular_accel=2.0)
    gait = TeleopGait(0.02, limits)
    run_law(gait, [0.0, 0.0], 7)  # the clock is mid-cycle now
    commands = []
    phases = []
    for _ in range(50):
        _, p = gait.tick(np.array([0.3, -1.0]))
        commands.append(gait.command.copy())
        phases.append(p)
    assert phases[0] == 0.0
    steps = np.abs(np.diff(np.vstack([[0.0, 0.0], commands]), axis=0))
    assert np.all(steps[:, 0] <= 0.5 * CONTROL_DT + 1e-12) and np.all(steps[:, 1] <= 2.0 * CONTROL_DT + 1e-12)
    np.testing.assert_allclose(commands[-1], [0.3, -1.0])  # 0.3 m/s after 0.6 s, -1 rad/s after 0.5 s


def test_stopping_puts_the_feet_down_at_the_stand_pose_smoothly() -> None:
    gait = TeleopGait(0.02, RampLimits())
    walk, _ = run_law(gait, [0.2, 0.5], 100)
    stop, _ = run_law(gait, [0.0, 0.0], 60)
    np.testing.assert_allclose(stop[-10:], np.tile(STAND_POSE, (10, 1)), atol=1e-12)
    # No jump: the stop is no harsher than a step of steady walking.
    steady = np.abs(np.diff(walk[50:], axis=0)).max()
    transition = np.abs(np.diff(np.vstack([walk[-1:], stop]), axis=0)).max()
    assert transition <= steady + 1e-9


@pytest.mark.parametrize("vx", np.linspace(*COMMAND_LIMITS["vx"], 5))
@pytest.mark.parametrize("wz", np.linspace(*COMMAND_LIMITS["wz"], 5))
def test_every_allowed_command_is_reachable_and_within_joint_limits(vx: float, wz: float) -> None:
    q, _ = run_law(TeleopGait(0.02, RampLimits()), [vx, wz], seconds_to_steps(2 * GAIT_PERIOD_S) + 40)
    assert np.all(np.isfinite(q))
    assert np.all(q >= JOINT_LOWER) and np.all(q <= JOINT_UPPER)


# --- the node ----------------------------------------------------------------------------------


class Driver:
    """Publishes /cmd_vel from the test and collects /joint_commands and /gait/phase."""

    def __init__(self, probe) -> None:
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float32

        self.probe = probe
        self.Twist = Twist
        self.commands: list[tuple[float, object]] = []  # (receive time, msg)
        self.phases: list[float] = []
        self.cmd_pub = probe.node.create_publisher(Twist, CMD_VEL_TOPIC, 10)
        probe.node.create_subscription(
            JointState, JOINT_COMMANDS_TOPIC, lambda m: self.commands.append((time.monotonic(), m)), 50
        )
        probe.node.create_subscription(Float32, GAIT_PHASE_TOPIC, lambda m: self.phases.append(m.data), 50)

    def connect(self, timeout: float = 30.0) -> None:
        ok = self.probe.spin_until(
            lambda: self.cmd_pub.get_subscription_count() > 0 and len(self.commands) > 5, timeout
        )
        assert ok, "teleop_gait_node did not come up"

    def drive(self, vx: float, wz: float, seconds: float, lateral: float = 0.0) -> list:
        """Send the command at 20 Hz; return the /joint_commands received meanwhile."""
        start = len(self.commands)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = self.Twist()
            msg.linear.x, msg.linear.y, msg.angular.z = vx, lateral, wz
            self.cmd_pub.publish(msg)
            self.probe.spin_for(0.05)
        return [m for _, m in self.commands[start:]]


def positions(msgs) -> np.ndarray:
    return np.array([m.position for m in msgs])


def stride(msgs) -> np.ndarray:
    """Fore-aft travel (m) of each foot over the messages: the step length per leg."""
    feet = np.array([joints_to_feet(q)[:, 0] for q in positions(msgs)])
    return np.ptp(feet, axis=0)


@pytest.mark.ros
def test_node_trots_turns_and_stands_still_after_the_timeout(spawn_node, ros_probe) -> None:
    node = spawn_node("pidog_control.teleop_gait_node")
    driver = Driver(ros_probe)
    driver.connect()
    idle = [m for _, m in driver.commands]
    np.testing.assert_allclose(positions(idle), np.tile(STAND_POSE, (len(idle), 1)), atol=1e-9)

    straight = driver.drive(0.15, 0.0, 2.0, lateral=0.05)
    turning = driver.drive(0.15, 1.0, 2.0)
    silence = time.monotonic()
    ros_probe.spin_for(2.0)  # silence: 0.5 s timeout, then ramps down and feet down

    # 50 Hz by the node's own clock, joints by name.
    stamps = np.array([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, m in driver.commands])
    assert np.median(np.diff(stamps)) == pytest.approx(CONTROL_DT, abs=0.002)
    assert all(tuple(m.name) == JOINT_NAMES for _, m in driver.commands)
    # The published phase advances one control period per command.
    steps = np.mod(np.diff(driver.phases), 1.0)
    assert np.median(steps) == pytest.approx(PHASE_STEP, abs=1e-6)

    # Going straight, left and right legs stride alike; turning left, the right legs stride further.
    s = stride(straight[-40:])  # after the 0.3 s ramp
    assert s.min() > 0.02
    assert abs((s[0] + s[2]) - (s[1] + s[3])) < 0.004
    t = stride(turning[-40:])
    assert (t[1] + t[3]) - (t[0] + t[2]) > 0.03

    # Stood still after the timeout: the stand pose exactly, over the silence's last 0.4 s (timed
    # from when the silence began: the checks above take a while on a loaded machine, and
    # nothing is received while they run).
    last = [m for recv, m in driver.commands if recv > silence + 1.6]
    assert len(last) >= 10
    np.testing.assert_allclose(positions(last), np.tile(STAND_POSE, (len(last), 1)), atol=1e-9)
    assert node.alive()
    assert node.log().count("linear.y is not supported") == 1


@pytest.mark.ros
def test_estop_stops_publishing_and_release_restarts_from_standing(spawn_node, ros_probe) -> None:
    from std_msgs.msg import Bool

    spawn_node("pidog_control.teleop_gait_node")
    driver = Driver(ros_probe)
    latched = LATCHED_QOS
    estop = ros_probe.node.create_publisher(Bool, ESTOP_TOPIC, latched)
    driver.connect()
    walking = driver.drive(0.2, 0.0, 1.0)
    mid_stride = np.abs(positions(walking[-10:]) - STAND_POSE).max()
    assert mid_stride > 0.05

    estop.publish(Bool(data=True))
    driver.drive(0.2, 0.0, 0.5)  # let the stop arrive; the operator keeps pushing
    during = driver.drive(0.2, 0.0, 1.0)
    assert during == []

    estop.publish(Bool(data=False))
    n_before = len(driver.commands)
    after = driver.drive(0.2, 0.0, 1.0)
    assert len(after) > 20
    first = driver.commands[n_before][1]
    # Back from standing: the first command is near the stand pose, not mid-stride (measured
    # against this gait's own stride, so a retuned gait does not break the check).
    first_step = np.abs(np.array(first.position) - STAND_POSE).max()
    assert first_step < 0.25 * mid_stride, (first_step, mid_stride)


@pytest.mark.ros
@pytest.mark.parametrize(
    "param, value", [("cmd_timeout_s", "-1.0"), ("step_height", "0.5"), ("max_linear_accel", "fast")]
)
def test_invalid_parameters_are_refused(param: str, value: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pidog_control.teleop_gait_node", "--ros-args", "-p", f"{param}:={value}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert f"'{param}'" in run.stdout + run.stderr
