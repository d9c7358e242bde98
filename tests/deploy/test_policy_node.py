"""policy_node as its own process over DDS, fed by a fake robot on the test's rclpy probe."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_graph import LATCHED, FakeSensors, estop_publisher, record
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, Vector3
from onnx_policies import linear_policy, nan_policy
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.messages import JOINT_NAMES
from pidog_description.spec import (
    ACTION_SCALE,
    COMMAND_LIMITS,
    OBS_DIM,
    OBS_SLICES,
    action_filter_alpha,
    observation_layout,
    policy_metadata,
)
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    DIAGNOSTICS_TOPIC,
    JOINT_STATES_TOPIC,
    LEARNING_POLICY_TOPIC,
    STREAM_QOS,
)

pytestmark = pytest.mark.ros

NODE = "pidog_control.policy_node"
FAST = {"soft_start_s": 0.4, "sensor_timeout_s": 0.25}


def bias_policy(path: Path, action: float) -> Path:
    """A policy that always outputs ``action`` for every joint (tanh of a bias)."""
    return linear_policy(path, bias=np.full(8, math.atanh(action), np.float32))


def wait_state(probe, rec, state: str, timeout: float = 10.0) -> bool:
    return probe.spin_until(lambda: rec.state == state, timeout)


def test_soft_start_then_policy_at_50_hz(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe, pose=LIE_POSE)
    policy = bias_policy(tmp_path / "p.onnx", 0.2)
    node = spawn_node(NODE, {"policy_path": policy, "soft_start_s": 1.0})
    policy_pose = STAND_POSE + 0.2 * ACTION_SCALE
    assert ros_probe.spin_until(lambda: len(rec.commands) > 150, 60), node.log()
    poses = [q for _, q in rec.commands]
    # It starts from where the robot is, not with a jump, and ends at the stand pose...
    assert np.abs(poses[0] - LIE_POSE).max() < 0.2
    first_policy = next(i for i, q in enumerate(poses) if np.allclose(q, policy_pose, atol=1e-5))
    assert np.allclose(poses[first_policy - 1], STAND_POSE, atol=1e-3), [
        np.abs(q - STAND_POSE).max() for q in poses[:first_policy]
    ]
    # ...over soft_start_s: 50 control ticks (counted in ticks, so a slow machine does not
    # stretch it), plus the one tick the servo model needs to reach the policy's pose.
    assert 48 <= first_policy <= 53, f"the soft start took {first_policy} commands"
    assert all(np.allclose(q, policy_pose, atol=1e-5) for q in poses[first_policy:])
    # One command per 20 ms tick: the node's own stamps, median over 100 ticks (robust to a
    # late tick on a loaded machine).
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in rec.raw_commands[-100:]])
    assert np.median(np.diff(stamps)) == pytest.approx(0.02, rel=0.1)
    assert list(rec.raw_commands[-1].name) == list(JOINT_NAMES)
    assert rec.state == "running" and node.alive()


def test_a_held_up_loop_is_reported_with_its_cause(tmp_path: Path, spawn_node, ros_probe) -> None:
    """policy_node stopped for 0.6 s (SIGSTOP: to the kernel, blocked) reports on /diagnostics
    that its loop was held up and how the gap was spent, and logs the overrun."""
    rec = record(ros_probe)
    reports: list[dict[str, str]] = []
    ros_probe.node.create_subscription(
        DiagnosticArray,
        DIAGNOSTICS_TOPIC,
        lambda m: reports.extend({v.key: v.value for v in s.values} for s in m.status),
        STREAM_QOS,
    )
    FakeSensors(ros_probe, pose=STAND_POSE)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.0), **FAST})
    assert wait_state(ros_probe, rec, "running", 30), node.log()
    node.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.6)
    node.proc.send_signal(signal.SIGCONT)

    # A loaded machine adds stalls of its own (one run saw a 54 ms one reported first): wait
    # for the report that holds the stop, and read the longest stall, not the last.
    def held_up(r: dict[str, str]) -> bool:
        return float(r.get("longest_loop_gap_s", 0)) >= 0.5

    assert ros_probe.spin_until(lambda: any(held_up(r) for r in reports), 10), reports[-1:]
    report = next(r for r in reports if held_up(r))
    assert int(report["loop_stalls"]) >= 1 and float(report["longest_loop_gap_s"]) >= 0.5, report
    stall = report["longest_loop_stall"]
    assert stall.startswith("held up"), report
    if "blocked" in stall:  # the kernel keeps scheduler statistics here
        assert float(stall.split("blocked ")[1].split(" s")[0]) >= 0.4, stall
    assert "control loop overrun" in node.log()


def test_estop_stops_commands_and_release_soft_starts(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe)
    estop = estop_publisher(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.1), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    estop(True)
    assert wait_state(ros_probe, rec, "estop", 5), node.log()
    # Commands already in flight may still land; then nothing for a long window.
    ros_probe.spin_for(0.5)
    before = len(rec.commands)
    ros_probe.spin_for(1.5)
    assert len(rec.commands) == before, f"{len(rec.commands) - before} commands after /estop"
    n_states = len(rec.states)
    estop(False)
    # Both states are checked in order, so a slow probe that sees them together still passes.
    assert ros_probe.spin_until(
        lambda: rec.states[n_states : n_states + 2] == ["soft_start", "running"], 10
    ), (
        rec.states,
        node.log(),
    )


def test_stale_sensors_trip_the_watchdog_which_holds(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    ros_probe.spin_for(0.5)
    sensors.enabled = False
    t_silent = time.monotonic()
    assert wait_state(ros_probe, rec, "stale_sensors", 5), node.log()
    # Not before sensor_timeout_s (0.25 s, less the last message's up to 20 ms head start); how
    # much later depends on the machine's load, so there is no upper bound beyond the wait.
    assert time.monotonic() - t_silent >= 0.2
    ros_probe.spin_for(0.5)
    held = rec.commands_since(time.monotonic() - 0.4)
    assert held and all(np.array_equal(q, held[0]) for q in held)
    assert "stale_sensors" in node.log() and JOINT_STATES_TOPIC in node.log()
    sensors.enabled = True
    assert wait_state(ros_probe, rec, "running", 5), node.log()


def test_tilt_beyond_the_limit_is_a_fall_stop(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(
        NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), "max_tilt_rad": 0.6, **FAST}
    )
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    sensors.roll = 0.5
    ros_probe.spin_for(0.5)
    assert rec.state == "running"
    sensors.roll = 0.9
    assert wait_state(ros_probe, rec, "fallen", 5), node.log()
    ros_probe.spin_for(0.5)
    held = rec.commands_since(time.monotonic() - 0.4)
    assert held and all(np.array_equal(q, held[0]) for q in held)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_names", "ignored /joint_states (1 so far): JointState lacks joints"),
        ("missing_joints", "JointState lacks joints ['rh_hip', 'rh_knee']"),
        ("nan_positions", "JointState has non-finite positions for ['lf_knee']"),
    ],
)
def test_a_malformed_joint_state_alone_trips_the_watchdog(
    tmp_path: Path, spawn_node, ros_probe, case: str, message: str
) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    # Only /joint_states goes bad; the IMU stays healthy, so the stale state can only come from
    # the malformed messages being refused.
    positions = [float(v) for v in STAND_POSE]
    if case == "unknown_names":
        sensors.joints_instead = JointState(name=[f"joint{i}" for i in range(8)], position=positions)
        message += f" {list(JOINT_NAMES)}; unknown names {[f'joint{i}' for i in range(8)]}"
    elif case == "missing_joints":
        sensors.joints_instead = JointState(name=list(JOINT_NAMES[:6]), position=positions[:6])
    else:
        positions[1] = float("nan")
        sensors.joints_instead = JointState(name=list(JOINT_NAMES), position=positions)
    assert wait_state(ros_probe, rec, "stale_sensors", 10), node.log()
    # The state message can overtake the node's log line: wait for the log, too.
    assert ros_probe.spin_until(lambda: "stale_sensors: no valid /joint_states" in node.log(), 5), node.log()
    assert "/imu/data (" not in node.log() and message in node.log()
    assert all(np.all(np.isfinite(q)) for _, q in rec.commands)
    assert node.alive()
    sensors.joints_instead = None
    assert wait_state(ros_probe, rec, "running", 10), node.log()


def test_nan_imu_trips_the_watchdog(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    sensors.corrupt = True
    assert wait_state(ros_probe, rec, "stale_sensors", 10), node.log()
    assert ros_probe.spin_until(
        lambda: "ignored /imu/data (1 so far): Imu orientation is not finite" in node.log(), 5
    )
    assert all(np.all(np.isfinite(q)) for _, q in rec.commands)
    sensors.corrupt = False
    assert wait_state(ros_probe, rec, "running", 10), node.log()


def command_echo_policy(path: Path) -> Path:
    """A policy whose first two actions are tanh of the (vx, wz) in its observation."""
    weight = np.zeros((OBS_DIM, 8), np.float32)
    start = OBS_SLICES["command"].start
    weight[start, 0] = weight[start + 1, 1] = 1.0
    return linear_policy(path, weight=weight)


def command_seen(pose: np.ndarray) -> np.ndarray:
    """The (vx, wz) the policy was given, read back from the pose the node commanded."""
    return np.arctanh((pose[:2] - STAND_POSE[:2]) / ACTION_SCALE[:2])


def test_cmd_vel_steers_the_policy_clipped_nan_stops_and_silence_stands(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe)
    node = spawn_node(
        NODE, {"policy_path": command_echo_policy(tmp_path / "echo.onnx"), "default_vx": 0.1, **FAST}
    )
    assert wait_state(ros_probe, rec, "running", 20), node.log()

    def sees(vx: float, wz: float, timeout: float = 10.0) -> bool:
        return ros_probe.spin_until(
            lambda: np.allclose(command_seen(rec.commands[-1][1]), [vx, wz], atol=1e-3), timeout
        )

    assert sees(0.1, 0.0), "before any /cmd_vel the policy should get default_vx"
    # A teleop in another process: /cmd_vel at 20 Hz, as a joystick driver sends it.
    twist_pub = ros_probe.node.create_publisher(Twist, CMD_VEL_TOPIC, STREAM_QOS)
    assert ros_probe.spin_until(lambda: twist_pub.get_subscription_count() > 0, 10)
    sent = {"cmd": (0.15, -0.4), "last": 0.0}

    def send() -> None:
        if sent["cmd"] is not None:
            twist_pub.publish(Twist(linear=Vector3(x=sent["cmd"][0]), angular=Vector3(z=sent["cmd"][1])))
            sent["last"] = time.monotonic()

    ros_probe.node.create_timer(0.05, send)
    assert sees(0.15, -0.4), node.log()
    lo, hi = COMMAND_LIMITS["vx"], COMMAND_LIMITS["wz"]
    sent["cmd"] = (1.0, 5.0)
    assert sees(lo[1], hi[1]), node.log()  # clipped to the upper limits
    sent["cmd"] = (-2.0, -3.0)
    assert sees(lo[0], hi[0]), node.log()  # and to the lower ones
    assert "/cmd_vel (vx=1 m/s, wz=5 rad/s) clipped to [0.3, 1.0]" in node.log()
    sent["cmd"] = (0.2, 0.5)
    assert sees(0.2, 0.5), node.log()
    sent["cmd"] = (float("nan"), 0.5)  # NaN on one axis stops both: no turning on in place
    assert sees(0.0, 0.0), node.log()
    assert "/cmd_vel is not finite (vx=nan, wz=0.5): stopping" in node.log()
    sent["cmd"] = (0.2, 0.5)
    assert sees(0.2, 0.5), node.log()

    # Silence: after cmd_timeout_s (0.5 s) the policy is told to stand (0, 0), not default_vx.
    sent["cmd"] = None
    assert sees(0.0, 0.0), node.log()
    t_zero = next(
        t for t, q in rec.commands if t > sent["last"] and np.allclose(command_seen(q), 0, atol=1e-3)
    )
    # A lower bound only (the node may notice late on a loaded machine, never early).
    assert t_zero - sent["last"] >= 0.45, f"stood {t_zero - sent['last']:.2f} s after the last /cmd_vel"
    assert "no /cmd_vel for 0.5 s: commanding a stop" in node.log()
    ros_probe.spin_for(1.0)
    assert np.allclose(command_seen(rec.commands[-1][1]), [0.0, 0.0], atol=1e-3)
    assert rec.state == "running" and node.alive()


def test_nan_policy_output_never_reaches_joint_commands(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe, pose=STAND_POSE)
    node = spawn_node(NODE, {"policy_path": nan_policy(tmp_path / "nan.onnx"), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    ros_probe.spin_for(1.0)
    assert len(rec.commands) > 30
    assert all(np.all(np.isfinite(msg.position)) for msg in rec.raw_commands)
    np.testing.assert_allclose(rec.commands[-1][1], STAND_POSE, atol=1e-6)
    assert "policy output is not finite" in node.log()


def test_follow_learning_hot_reloads_good_policies_and_keeps_the_old_on_bad(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe)
    announce = ros_probe.node.create_publisher(String, LEARNING_POLICY_TOPIC, LATCHED)
    node = spawn_node(NODE, {"follow_learning": True, **FAST})
    assert wait_state(ros_probe, rec, "no_policy", 20), node.log()
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(rec.commands[-1][1], STAND_POSE, atol=1e-6)

    def commanded(action: float) -> bool:
        return bool(rec.commands) and np.allclose(
            rec.commands[-1][1], STAND_POSE + action * ACTION_SCALE, atol=1e-5
        )

    announce.publish(String(data=str(bias_policy(tmp_path / "first.onnx", 0.2))))
    assert wait_state(ros_probe, rec, "running", 5), node.log()
    assert ros_probe.spin_until(lambda: commanded(0.2), 3)

    bad = tmp_path / "bad.onnx"
    meta = policy_metadata()
    meta["obs_dim"] = str(OBS_DIM + 1)
    linear_policy(bad, metadata=meta)
    announce.publish(String(data=str(bad)))
    assert ros_probe.spin_until(lambda: "not switching policy" in node.log(), 5), node.log()
    ros_probe.spin_for(0.3)
    assert commanded(0.2) and rec.state == "running"

    announce.publish(String(data=str(bias_policy(tmp_path / "second.onnx", -0.3))))
    assert ros_probe.spin_until(lambda: commanded(-0.3), 5), node.log()

    # A policy trained with env.obs_history = 2 (pidog-obs-v1h2, 70 inputs): the node switches
    # its observation to that layout, or the policy could not run and the legs would hold.
    h2 = observation_layout(2)
    history = linear_policy(
        tmp_path / "history.onnx",
        bias=np.full(8, math.atanh(0.15), np.float32),
        obs_dim=h2.dim,
        metadata=policy_metadata(h2),
    )
    announce.publish(String(data=str(history)))
    assert ros_probe.spin_until(lambda: commanded(0.15), 5), node.log()
    assert "policy failed" not in node.log()

    # A policy trained behind a 6 Hz action filter (env.action_filter_hz): the node runs that
    # filter, so the legs go from 0.15 to its 0.4 as a first-order step response, each command
    # the last one low-passed toward 0.4, instead of jumping there.
    alpha = action_filter_alpha(6.0)
    switched = len(rec.commands)
    filtered = linear_policy(
        tmp_path / "filtered.onnx",
        bias=np.full(8, math.atanh(0.4), np.float32),
        metadata=policy_metadata(action_filter_hz=6.0),
    )
    announce.publish(String(data=str(filtered)))
    assert ros_probe.spin_until(lambda: commanded(0.4), 5), node.log()
    actions = [float(np.mean((q - STAND_POSE) / ACTION_SCALE)) for _t, q in rec.commands[switched:]]
    between = [a for a in actions if 0.151 < a < 0.399]
    assert len(between) >= 2 and between == sorted(between), actions
    steps = [(a, b) for a, b in zip(actions, actions[1:], strict=False) if 0.151 < b < 0.399]
    assert any(abs(b - (alpha * a + (1 - alpha) * 0.4)) < 1e-4 for a, b in steps), actions


def _start_and_fail(params: dict[str, str]) -> subprocess.CompletedProcess:
    args = [arg for key, value in params.items() for arg in ("-p", f"{key}:={value}")]
    return subprocess.run(
        [sys.executable, "-m", NODE, "--ros-args", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "not found"),
        ("corrupt", "not a valid ONNX model"),
        ("wrong_input_size", f"must have shape [batch, {OBS_DIM}]"),
        ("metadata_mismatch", "'obs_layout_version'"),
        ("bad_parameter", "'max_tilt_rad'"),
        ("nothing_to_run", "'policy_path' is empty"),
    ],
)
def test_node_refuses_to_start_with_a_clear_message(tmp_path: Path, case: str, expected: str) -> None:
    path = tmp_path / "policy.onnx"
    params = {"policy_path": str(path)}
    if case == "corrupt":
        path.write_bytes(b"definitely not onnx" * 10)
    elif case == "wrong_input_size":
        linear_policy(path, obs_dim=OBS_DIM + 4)
    elif case == "metadata_mismatch":
        linear_policy(path, metadata={**policy_metadata(), "obs_layout_version": "pidog-obs-v0"})
    elif case == "bad_parameter":
        linear_policy(path)
        params["max_tilt_rad"] = "-0.5"
    elif case == "nothing_to_run":
        params = {}
    result = _start_and_fail(params)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
