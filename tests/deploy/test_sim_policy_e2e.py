"""Done-when of issue 5: sim_node and policy_node as separate processes over DDS walk the PiDog.

The policy is a real ONNX file loaded through OnnxPolicy: the scripted trot tabulated over the
gait phase (tests/deploy/onnx_policies.py), so the test needs no training and still checks the
whole deploy path - observation from the sim's topics, phase clock, action mapping, safety
layer, /joint_commands by name, the sim's servos - by the robot's ground-truth motion.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from deploy_graph import estop_publisher, record
from nav_msgs.msg import Odometry
from onnx_policies import trot_policy

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_sim_and_policy_node_walk_stop_on_estop_and_watchdog(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    poses: list[tuple[float, float, float]] = []
    ros_probe.node.create_subscription(
        Odometry,
        "/sim/ground_truth/odom",
        lambda m: poses.append((time.monotonic(), m.pose.pose.position.x, m.pose.pose.position.y)),
        10,
    )
    estop = estop_publisher(ros_probe)
    sim = spawn_node("pidog_sim.sim_node", {"rate_hz": 50.0, "randomize": False, "seed": 0})
    policy = spawn_node(
        "pidog_learning.policy_node",
        {"policy_path": trot_policy(tmp_path / "trot.onnx"), "use_sim_time": True, "soft_start_s": 0.5},
    )
    logs = lambda: f"--- sim_node\n{sim.log()}\n--- policy_node\n{policy.log()}"  # noqa: E731

    assert ros_probe.spin_until(lambda: rec.state == "running", 60), logs()
    t_run = time.monotonic()
    ros_probe.spin_for(6.0)
    rate = len(rec.commands_since(t_run + 1.0)) / 5.0
    assert 40 <= rate <= 60, f"/joint_commands at {rate:.1f} Hz\n{logs()}"
    walk = [(x, y) for t, x, y in poses if t >= t_run]
    dx, dy = walk[-1][0] - walk[0][0], walk[-1][1] - walk[0][1]
    assert dx > 0.2, f"the trot policy moved the robot only {dx:.3f} m forward in 6 s\n{logs()}"
    assert abs(dy) < dx
    assert rec.state == "running"

    estop(True)
    assert ros_probe.spin_until(lambda: rec.state == "estop", 3), logs()
    t_stop = time.monotonic()
    ros_probe.spin_for(1.0)
    assert not [t for t, _ in rec.commands if t > t_stop + 0.1], "commands after /estop"
    estop(False)
    assert ros_probe.spin_until(lambda: rec.state == "running", 5), logs()

    assert sim.stop() is not None  # the sensors fall silent (and sim time stops)
    assert ros_probe.spin_until(lambda: rec.state == "stale_sensors", 3), logs()
    assert ros_probe.spin_until(lambda: "state stale_sensors: no valid /joint_states" in policy.log(), 3), (
        logs()
    )
    assert policy.alive()
    final = np.array([q for _, q in rec.commands][-1])
    assert np.all(np.isfinite(final))
