"""The shipped policy (models/policies/pidog_walk.onnx) walks the simulated PiDog over DDS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from deploy_graph import record
from nav_msgs.msg import Odometry

from pidog_learning.policy_runtime import OnnxPolicy

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "policies"


def test_shipped_policy_loads_with_its_evaluation_and_config() -> None:
    policy = OnnxPolicy(SHIPPED / "pidog_walk.onnx")  # metadata matches this robot description
    assert policy.metadata["obs_layout_version"]
    evaluation = json.loads((SHIPPED / "pidog_walk.eval.json").read_text())  # pidog-eval's format
    assert evaluation["falls"] == 0 and evaluation["mean_forward_speed_mps"] > 0.1
    assert json.loads((SHIPPED / "pidog_walk.config.json").read_text())["total_rl_timesteps"] > 0


def test_shipped_policy_walks_forward_through_sim_and_policy_node(spawn_node, ros_probe) -> None:
    rec = record(ros_probe)
    poses: list[tuple[float, float]] = []
    ros_probe.node.create_subscription(
        Odometry,
        "/sim/ground_truth/odom",
        lambda m: poses.append((time.monotonic(), m.pose.pose.position.x)),
        10,
    )
    sim = spawn_node("pidog_sim.sim_node", {"randomize": False, "seed": 3})
    policy = spawn_node(
        "pidog_learning.policy_node",
        {"policy_path": str(SHIPPED / "pidog_walk.onnx"), "use_sim_time": True, "default_vx": 0.2},
    )
    assert ros_probe.spin_until(lambda: rec.state == "running", 60), sim.log() + policy.log()
    t_run = time.monotonic()
    ros_probe.spin_for(6.0)
    xs = [x for t, x in poses if t >= t_run]
    assert xs[-1] - xs[0] > 0.4, f"walked only {xs[-1] - xs[0]:.2f} m in 6 s\n{policy.log()}"
    assert rec.state == "running"
