"""policy_node as its own process over DDS, fed by a fake robot on the test's rclpy probe."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_graph import LATCHED, FakeSensors, estop_publisher, record
from onnx_policies import linear_policy, nan_policy
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.messages import JOINT_NAMES
from pidog_description.spec import ACTION_SCALE, OBS_DIM, policy_metadata

pytestmark = pytest.mark.ros

NODE = "pidog_learning.policy_node"
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
    assert wait_state(ros_probe, rec, "soft_start", 20), node.log()
    t0 = time.monotonic()
    assert wait_state(ros_probe, rec, "running", 5), node.log()
    ramp_s = time.monotonic() - t0
    assert 0.7 < ramp_s < 2.0, f"soft start took {ramp_s:.2f} s"
    ramp = rec.commands_since(t0 - 0.1)
    # It starts from where the robot is, not with a jump, and ends at the stand pose.
    assert np.abs(rec.commands[0][1] - LIE_POSE).max() < 0.2
    assert any(np.allclose(q, STAND_POSE, atol=1e-3) for q in ramp)
    t1 = time.monotonic()
    ros_probe.spin_for(2.0)
    window = rec.commands_since(t1)
    rate = len(window) / 2.0
    assert 40 <= rate <= 60, f"/joint_commands at {rate:.1f} Hz"
    np.testing.assert_allclose(window[-1], STAND_POSE + 0.2 * ACTION_SCALE, atol=1e-5)
    assert list(rec.raw_commands[-1].name) == list(JOINT_NAMES)
    assert node.alive()


def test_estop_stops_commands_and_release_soft_starts(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe)
    estop = estop_publisher(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.1), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    estop(True)
    assert wait_state(ros_probe, rec, "estop", 2), node.log()
    t_stop = time.monotonic()
    ros_probe.spin_for(1.5)
    late = [t for t, _ in rec.commands if t > t_stop + 0.1]
    assert not late, f"{len(late)} commands after /estop"
    estop(False)
    assert wait_state(ros_probe, rec, "soft_start", 2) and wait_state(ros_probe, rec, "running", 3), (
        node.log()
    )


def test_stale_sensors_trip_the_watchdog_which_holds(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    ros_probe.spin_for(0.5)
    sensors.enabled = False
    t_silent = time.monotonic()
    assert wait_state(ros_probe, rec, "stale_sensors", 2), node.log()
    assert time.monotonic() - t_silent < 0.25 + 0.5
    ros_probe.spin_for(0.5)
    held = rec.commands_since(time.monotonic() - 0.4)
    assert held and all(np.array_equal(q, held[0]) for q in held)
    assert "stale_sensors" in node.log() and "/joint_states" in node.log()
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
    assert wait_state(ros_probe, rec, "fallen", 2), node.log()
    ros_probe.spin_for(0.5)
    held = rec.commands_since(time.monotonic() - 0.4)
    assert held and all(np.array_equal(q, held[0]) for q in held)


def test_nan_and_malformed_inputs_are_ignored_and_the_watchdog_takes_over(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    rec = record(ros_probe)
    sensors = FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "p.onnx", 0.3), **FAST})
    assert wait_state(ros_probe, rec, "running", 20), node.log()
    sensors.corrupt = True
    assert wait_state(ros_probe, rec, "stale_sensors", 2), node.log()
    # Unknown joint names and missing joints: also refused.
    pub = ros_probe.node.create_publisher(JointState, "/joint_states", 10)
    # A new publisher must be discovered before its messages reach the node.
    assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)
    for _ in range(10):
        pub.publish(JointState(name=[f"joint{i}" for i in range(8)], position=[0.0] * 8))
        pub.publish(JointState(name=list(JOINT_NAMES[:6]), position=[0.0] * 6))
        ros_probe.spin_for(0.1)
    assert rec.state == "stale_sensors"
    assert all(np.all(np.isfinite(q)) for _, q in rec.commands)
    log = node.log()
    assert "ignored /joint_states" in log and "non-finite" in log and "ignored /imu/data" in log
    assert "unknown names" in log or "lacks joints" in log
    assert node.alive()
    sensors.corrupt = False
    assert wait_state(ros_probe, rec, "running", 5), node.log()


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
    announce = ros_probe.node.create_publisher(String, "/learning/policy", LATCHED)
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
