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

from pidog_description.topics import GROUND_TRUTH_ODOM_TOPIC

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_sim_and_policy_node_walk_stop_on_estop_and_watchdog(tmp_path: Path, spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    poses: list[tuple[float, float, float]] = []
    ros_probe.node.create_subscription(
        Odometry,
        GROUND_TRUTH_ODOM_TOPIC,
        lambda m: poses.append((time.monotonic(), m.pose.pose.position.x, m.pose.pose.position.y)),
        10,
    )
    estop = estop_publisher(ros_probe)
    sim = spawn_node("pidog_sim.sim_node", {"rate_hz": 50.0, "randomize": False, "seed": 0})
    policy = spawn_node(
        "pidog_control.policy_node",
        {"policy_path": trot_policy(tmp_path / "trot.onnx"), "use_sim_time": True, "soft_start_s": 0.5},
    )
    logs = lambda: f"--- sim_node\n{sim.log()}\n--- policy_node\n{policy.log()}"  # noqa: E731

    assert ros_probe.spin_until(lambda: rec.state == "running", 60), logs()
    t_run = time.monotonic()
    ros_probe.spin_for(6.0)
    # Under use_sim_time the commands carry sim time: one per 20 ms control step of the sim,
    # however fast the machine runs it (median over the window: a late tick does not count).
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in rec.raw_commands[-200:]])
    assert np.median(np.diff(stamps)) == pytest.approx(0.02, abs=1e-3), logs()
    walk = [(x, y) for t, x, y in poses if t >= t_run]
    dx, dy = walk[-1][0] - walk[0][0], walk[-1][1] - walk[0][1]
    assert dx > 0.2, f"the trot policy moved the robot only {dx:.3f} m forward in 6 s\n{logs()}"
    assert abs(dy) < dx
    assert rec.state == "running"

    estop(True)
    assert ros_probe.spin_until(lambda: rec.state == "estop", 10), logs()
    ros_probe.spin_for(0.5)  # commands already in flight may still land
    before = len(rec.commands)
    ros_probe.spin_for(1.0)
    assert len(rec.commands) == before, "commands after /estop"
    estop(False)
    assert ros_probe.spin_until(lambda: rec.state == "running", 10), logs()

    # The simulator goes away: it shuts down cleanly, its topics fall silent (and sim time
    # stops, so only policy_node's wall-clock watchdog can notice).
    assert sim.stop() == 0, sim.log()
    ros_probe.spin_for(0.5)
    silent_from = len(poses)
    assert ros_probe.spin_until(lambda: rec.state == "stale_sensors", 10), logs()
    assert len(poses) == silent_from, "odometry after the simulator stopped"
    assert ros_probe.spin_until(lambda: "state stale_sensors: no valid /joint_states" in policy.log(), 3), (
        logs()
    )
    assert policy.alive()
    final = np.array([q for _, q in rec.commands][-1])
    assert np.all(np.isfinite(final))
