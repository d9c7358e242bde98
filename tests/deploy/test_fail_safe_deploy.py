"""Fail-safe deploy graph (issue 18): limits are the same in sim and on the (emulated) robot, and
the robot launch keeps its DDS traffic apart from simulations on the same network."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from deploy_graph import FakeSensors, record
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from test_policy_node import FAST, NODE, bias_policy, command_echo_policy, command_seen

from pidog_description.limits import clip_joint_targets
from pidog_description.robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from pidog_description.topics import (
    HW_STATE_TOPIC_NAME,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    SENSOR_QOS,
    STREAM_QOS,
)
from pidog_learning.launch_files import parse_launch

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"
# hw_node's command watchdog in the kill test (see there why not the default).
COMMAND_TIMEOUT_S = 1.0
# Hips swung into each other on the left, a right knee folded through its upper leg, a hip
# beyond the servo range: every kind of clipping at once.
OUT_OF_RANGE = np.radians([120.0, -100.0, 10.0, 20.0, -120.0, 60.0, 30.0, -95.0])


def test_robot_launch_runs_on_its_own_dds_domain() -> None:
    robot = parse_launch(LAUNCH_DIR / "robot.launch.xml", {"policy_path": "/p.onnx"})
    sim = parse_launch(LAUNCH_DIR / "sim_policy.launch.xml", {"policy_path": "/p.onnx"})
    assert robot.env["ROS_DOMAIN_ID"] != sim.env.get("ROS_DOMAIN_ID", "0"), (
        "a sim_policy launch on defaults must not reach the robot"
    )
    moved = parse_launch(LAUNCH_DIR / "robot.launch.xml", {"policy_path": "/p.onnx", "domain_id": "7"})
    assert moved.env["ROS_DOMAIN_ID"] == "7"


@pytest.mark.parametrize("overrides", [{}, {"max_tilt_rad": "0.7"}], ids=["default", "overridden"])
def test_robot_launch_gives_hw_node_and_policy_node_one_fall_threshold(overrides: dict[str, str]) -> None:
    """A tilt policy_node calls a fall (and recovers from after 2 s upright) must also latch
    hw_node's 'fallen', which only the operator resets."""
    graph = parse_launch(LAUNCH_DIR / "robot.launch.xml", {"policy_path": "/p.onnx", **overrides})
    params = {node.name: node.params for node in graph.nodes}
    assert float(params["hw_node"]["fall_tilt_rad"]) == float(params["policy_node"]["max_tilt_rad"])
    if overrides:
        assert float(params["hw_node"]["fall_tilt_rad"]) == 0.7


@pytest.mark.ros
def test_out_of_range_command_gives_the_same_clipped_pose_in_sim_and_on_the_robot(
    spawn_node, ros_probe
) -> None:
    expected, clipped = clip_joint_targets(OUT_OF_RANGE)
    assert clipped.sum() >= 5
    assert not np.allclose(expected, np.clip(OUT_OF_RANGE, JOINT_LOWER, JOINT_UPPER)), (
        "the geometric limits must matter for this command"
    )
    # Both publish /joint_states; tell them apart by the publisher.
    streams: dict[bytes, list[np.ndarray]] = defaultdict(list)

    def on_state(msg: JointState, info) -> None:
        gid = info["publisher_gid"]
        streams[bytes(gid["data"] if isinstance(gid, dict) else gid)].append(np.array(msg.position))

    ros_probe.node.create_subscription(JointState, JOINT_STATES_TOPIC, on_state, SENSOR_QOS)
    spawn_node("pidog_sim.sim_node", {"rate_hz": 50.0, "randomize": False, "seed": 0})
    spawn_node(
        "pidog_hw.hw_node",
        {
            "i2c_bus": "emulated",
            "imu_backend": "none",
            "startup_pose": "none",
            "start_armed": True,
            "shutdown_pose": "limp",
        },
    )
    assert ros_probe.spin_until(lambda: len(streams) == 2, 60), "no /joint_states from sim_node and hw_node"
    commands = ros_probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    msg = JointState(name=list(JOINT_NAMES), position=OUT_OF_RANGE.tolist())
    end = time.monotonic() + 5.0  # hw_node switches servos on one by one and slews at 60 deg/s
    while time.monotonic() < end:
        commands.publish(msg)
        ros_probe.spin_for(0.02)
    finals = [positions[-1] for positions in streams.values()]
    for final in finals:
        np.testing.assert_allclose(final, expected, atol=math.radians(0.5))
    np.testing.assert_allclose(finals[0], finals[1], atol=math.radians(0.5))


@pytest.mark.ros
def test_policy_node_gives_the_policy_a_zero_command_until_an_operator_drives(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    rec = record(ros_probe)
    FakeSensors(ros_probe)
    node = spawn_node(NODE, {"policy_path": command_echo_policy(tmp_path / "echo.onnx"), **FAST})
    assert ros_probe.spin_until(lambda: rec.state == "running", 20), node.log()
    ros_probe.spin_for(1.0)
    seen = [command_seen(q) for _, q in rec.commands[-20:]]
    np.testing.assert_allclose(seen, 0.0, atol=1e-3, err_msg="started without /cmd_vel: it must not walk")


@pytest.mark.ros
def test_killing_policy_node_mid_walk_makes_hw_node_stand(
    tmp_path: Path, spawn_node, ros_probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real policy_node drives hw_node (emulated bus, its own IMU) and is killed (SIGKILL,
    no goodbye): hw_node's command watchdog ramps the legs to the stand pose."""
    # Both nodes in robot.launch.xml's discovery range (SUBNET; localhost as a static peer, so no
    # multicast is needed), where hw_node keeps its DDS traffic off shared memory: in the tests'
    # LOCALHOST range rmw_fastrtps forces shared memory, and a policy_node killed mid-read once
    # blocked hw_node's publish() 3.0 s (pidog_hw/dds_transport.py).
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    monkeypatch.setenv("ROS_STATIC_PEERS", "127.0.0.1")
    commands: list[float] = []
    states: list[tuple[float, str]] = []
    ros_probe.node.create_subscription(
        JointState, JOINT_COMMANDS_TOPIC, lambda _m: commands.append(time.monotonic()), STREAM_QOS
    )
    ros_probe.node.create_subscription(
        String, HW_STATE_TOPIC_NAME, lambda m: states.append((time.monotonic(), m.data)), LATCHED_QOS
    )
    # A 1 s watchdog rather than the default 0.3 s: on a loaded CI machine (two workers on two
    # cores) one parallel run saw hw_node time out while policy_node was still alive, starved of
    # CPU for 0.3 s. The test is about what happens after the kill, not about the threshold.
    hw = spawn_node(
        "pidog_hw.hw_node",
        {
            "i2c_bus": "emulated",
            "imu_calibration_s": 0.0,
            "start_armed": True,
            "shutdown_pose": "limp",
            "command_timeout_s": COMMAND_TIMEOUT_S,
        },
    )
    policy = spawn_node(NODE, {"policy_path": bias_policy(tmp_path / "bias.onnx", 0.3), **FAST})
    assert ros_probe.spin_until(lambda: len(commands) > 100, 60), policy.log() + hw.log()
    # Fast DDS names a thread per shared-memory port it listens on ("dds.shm.<port>").
    threads = {p.read_text().strip() for p in Path(f"/proc/{hw.proc.pid}/task").glob("*/comm")}
    assert not any(t.startswith("dds.shm") for t in threads), (sorted(threads), hw.log())
    assert "DDS transports: UDP only" in hw.log(), hw.log()
    # The latched state can reach the probe after the commands do (discovery order under load).
    assert ros_probe.spin_until(lambda: bool(states) and states[-1][1] == "armed", 10), (
        states[-3:],
        hw.log(),
    )
    killed_at = time.time()
    policy.proc.kill()
    policy.proc.wait(10)
    assert ros_probe.spin_until(lambda: states[-1][1] == "moving_to_pose", 10), (states[-3:], hw.log())
    # When hw_node gave up, by its own log's wall-clock stamp: the probe's arrival times would
    # add DDS delivery, and a reliable message lost on a loaded machine is resent ~3 s later
    # (seen once: the state arrived 4.0 s after the last command, the log said 0.3 s).
    stamp = re.search(r"\[(\d+\.\d+)\] \[hw_node\]: command timeout", hw.log())
    assert stamp, hw.log()
    reaction = float(stamp.group(1)) - killed_at
    # Its message says how long ago the last accepted command was due, whether stale ones
    # (delivered late, by their stamps) were dropped, and, when the check itself ran late, how
    # the control loop spent the gap by the kernel's accounting. Time the loop spent waiting for
    # a CPU is the machine's load; time blocked in a call would be hw_node's defect and is not
    # excused. (A check 2 s late was seen once, beside the Ray and sysid tests on two cores,
    # before hw_node could say why.)
    starved = re.search(
        r"this check ran late, the control loop held up [\d.]+ s: waiting for a CPU ([\d.]+) s", hw.log()
    )
    waiting = float(starved.group(1)) if starved else 0.0
    print(
        f"policy_node killed: hw_node timed out and ramps to stand {reaction:.3f} s later ({waiting:.2f} s short of CPU)"
    )
    log = hw.log()
    # Where hw_node was stuck, if its loop stalled (stall_trace_s): the trace first, then the end.
    trace = log[log.index("Timeout (") :][:6000] if "Timeout (" in log else ""
    assert reaction < COMMAND_TIMEOUT_S + 0.45 + waiting, (
        f"ramp to stand within the timeout and a loaded machine's margin:\n{trace}\n...\n{log[-4000:]}"
    )
