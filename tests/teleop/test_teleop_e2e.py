"""Done-when of issue 7: teleop the simulated PiDog, record a bag, import it, clone it, run it.

sim_node, teleop_gait_node, bag_recorder and policy_node are separate processes on DDS; the
test drives /cmd_vel like an operator, checks the robot really walked and turned (sim ground
truth), imports the MCAP bag into demonstrations, trains a tiny BC policy on them, exports it to
ONNX and has policy_node run it against the same sim.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.time import Time

from pidog_description.spec import OBS_SLICES
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    GROUND_TRUTH_ODOM_TOPIC,
    JOINT_COMMANDS_TOPIC,
    POLICY_STATE_TOPIC_NAME,
    STREAM_QOS,
    TELEOP_RECORDED_TOPICS,
)
from pidog_learning.bag_import import import_bags

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# (seconds, vx m/s, wz rad/s); None = the operator lets go (no /cmd_vel at all).
SCRIPT = ((1.0, None, None), (4.0, 0.2, 0.0), (3.0, 0.1, 0.8), (2.0, None, None))


def yaw(q) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def test_teleop_record_import_clone_and_deploy(tmp_path: Path, spawn_node, ros_probe) -> None:
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry

    poses: list[tuple[float, float, float]] = []  # (sim time, x, yaw): sim_node stamps with sim time
    ros_probe.node.create_subscription(
        Odometry,
        GROUND_TRUTH_ODOM_TOPIC,
        lambda m: poses.append(
            (
                Time.from_msg(m.header.stamp).nanoseconds * 1e-9,
                m.pose.pose.position.x,
                yaw(m.pose.pose.orientation),
            )
        ),
        STREAM_QOS,
    )
    cmd_pub = ros_probe.node.create_publisher(Twist, CMD_VEL_TOPIC, STREAM_QOS)
    bag = tmp_path / "teleop_bag"
    sim = spawn_node("pidog_sim.sim_node", {"randomize": False, "seed": 0})
    gait = spawn_node("pidog_control.teleop_gait_node")
    recorder = spawn_node("pidog_control.bag_recorder", {"output": str(bag)})
    logs = lambda: "\n".join(f"--- {p.module}\n{p.log()}" for p in (sim, gait, recorder))  # noqa: E731

    ready = ros_probe.spin_until(
        lambda: recorder.log().count("subscribed to") == len(TELEOP_RECORDED_TOPICS) and len(poses) > 10, 90
    )
    assert ready, logs()

    # Each SCRIPT line lasts its seconds of sim time: a loaded machine runs the sim slower, and
    # the operator's script stretches with it instead of getting shorter in sim terms.
    starts = []  # sim time at the start of each SCRIPT line
    for seconds, vx, wz in SCRIPT:
        starts.append(poses[-1][0])
        deadline = time.monotonic() + 10 * seconds + 30
        while poses[-1][0] < starts[-1] + seconds:
            assert time.monotonic() < deadline, f"sim time stalled\n{logs()}"
            if vx is not None:
                msg = Twist()
                msg.linear.x, msg.angular.z = vx, wz
                cmd_pub.publish(msg)
            ros_probe.spin_for(0.05)
    recorder.proc.send_signal(signal.SIGINT)
    assert recorder.proc.wait(timeout=30) == 0, logs()

    # The sim really walked forward, then turned left.
    def pose_at(t: float) -> tuple[float, float]:
        _, x, th = min(poses, key=lambda p: abs(p[0] - t))
        return x, th

    x0, _ = pose_at(starts[1])
    x1, th1 = pose_at(starts[2])
    _, th2 = pose_at(starts[3])
    assert x1 - x0 > 0.1, f"walked only {x1 - x0:.3f} m\n{logs()}"
    assert np.mod(th2 - th1 + np.pi, 2 * np.pi) - np.pi > 0.3, logs()

    demos, report = import_bags([bag], output=tmp_path / "demonstrations.npz")
    text = report.format()
    assert len(demos) >= 300, text
    assert "recorded on /gait/phase" in report.bags[0].phase_source, text
    assert report.bags[0].storage == "mcap"
    command = demos.observations[:, OBS_SLICES["command"]]
    for vx, wz in ((0.2, 0.0), (0.1, 0.8), (0.0, 0.0)):
        assert np.sum(np.all(np.isclose(command, [vx, wz], atol=1e-6), axis=1)) > 40, (vx, wz, text)
    gravity = demos.observations[:, OBS_SLICES["gravity"]]
    assert np.all(gravity[:, 2] < -0.9), "the robot tipped over during the demonstration"
    walking = np.any(command != 0, axis=1)
    assert demos.actions[walking].std(axis=0).min() > 0.02  # the joints move while walking

    # --- tiny BC -> ONNX -> policy_node on the same sim ---------------------------------------
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from pidog_description.topics import LATCHED_QOS as LATCHED
    from pidog_learning.bc import train_bc
    from pidog_learning.config import resolve_config
    from pidog_learning.export import export_onnx
    from pidog_learning.networks import make_policy, policy_kwargs

    gait.stop()  # one commander at a time on /joint_commands
    policy = make_policy(policy_kwargs(resolve_config("tiny")), use_camera=False)
    result = train_bc(
        demos,
        policy,
        epochs=5,
        learning_rate=1e-3,
        batch_size=64,
        validation_fraction=0.2,
        seed=0,
        progress=False,
    )
    # It learned something: the training loss fell (the validation split of a 10 s recording is
    # a few dozen samples, too noisy to judge 5 epochs by).
    assert result.train_loss[-1] < result.train_loss[0], result.train_loss
    onnx_path = export_onnx(policy, tmp_path / "policy.onnx", {"source": "teleop bag e2e"})

    states: list[str] = []
    commands: list[np.ndarray] = []
    ros_probe.node.create_subscription(
        String, POLICY_STATE_TOPIC_NAME, lambda m: states.append(m.data), LATCHED
    )
    ros_probe.node.create_subscription(
        JointState, JOINT_COMMANDS_TOPIC, lambda m: commands.append(np.array(m.position)), 50
    )
    node = spawn_node("pidog_control.policy_node", {"policy_path": str(onnx_path), "soft_start_s": 0.5})
    assert ros_probe.spin_until(lambda: states and states[-1] == "running", 60), node.log()
    n = len(commands)
    assert ros_probe.spin_until(lambda: len(commands) - n > 50, 30), node.log()  # a count, not a rate
    assert all(np.all(np.isfinite(q)) for q in commands[n:])
    assert node.alive()
