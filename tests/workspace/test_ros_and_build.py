"""The environment itself: real rclpy over DDS between processes, and a colcon build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PUBLISHER = textwrap.dedent(
    """
    import sys, rclpy
    from sensor_msgs.msg import JointState
    from pidog_description import JOINT_NAMES
    rclpy.init()
    node = rclpy.create_node("dds_test_publisher")
    pub = node.create_publisher(JointState, "/dds_test/joint_states", 10)
    count = 0
    def tick():
        global count
        msg = JointState(name=list(JOINT_NAMES), position=[0.01 * count] * 8)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        count += 1
    node.create_timer(0.02, tick)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import sys, time, rclpy
    from sensor_msgs.msg import JointState
    rclpy.init()
    node = rclpy.create_node("dds_test_subscriber")
    got = []
    node.create_subscription(JointState, "/dds_test/joint_states", got.append, 10)
    end = time.monotonic() + 30
    while len(got) < 20 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    names = set(tuple(m.name) for m in got)
    print(f"received={len(got)} names={sorted(names)}")
    sys.exit(0 if len(got) >= 20 else 1)
    """
)


@pytest.mark.ros
def test_two_processes_exchange_joint_state_over_dds(tmp_path: Path) -> None:
    env = os.environ.copy()
    pub = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        sub = subprocess.run(
            [sys.executable, "-c", SUBSCRIBER], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        pub.terminate()
        pub.wait(timeout=10)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert "lf_hip" in sub.stdout and "rh_knee" in sub.stdout


def test_rclpy_and_message_types_import() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import rclpy; from sensor_msgs.msg import JointState, Imu; print('ok')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_colcon_builds_the_workspace(tmp_path: Path) -> None:
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    result = subprocess.run(
        [
            colcon,
            "build",
            "--symlink-install",
            "--base-paths",
            str(REPO / "ros2_ws" / "src"),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 packages finished" in result.stdout
    # ros2 run looks for executables in <install>/<pkg>/lib/<pkg>/.
    for pkg, exe in [("pidog_sim", "sim_node"), ("pidog_learning", "policy_node"), ("pidog_hw", "hw_node")]:
        assert (tmp_path / "install" / pkg / "lib" / pkg / exe).exists(), f"{pkg} {exe} not installed"
    share = tmp_path / "install" / "pidog_description" / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "pidog_description").exists()
