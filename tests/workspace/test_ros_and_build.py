"""The environment itself: real rclpy over DDS between processes, and a colcon build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
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


WORKSPACE_SRC = REPO / "ros2_ws" / "src"
ROBOT_SIDE = ("pidog_description", "pidog_control", "pidog_hw")
TRAINING_SIDE = ("pidog_sim", "pidog_learning")
# rosdep keys of training-only Python packages (DESIGN.md §1): none may reach the robot.
TRAINING_KEYS = (
    "torch",
    "mujoco",
    "stable-baselines3",
    "stable_baselines3",
    "gymnasium",
    "onnx",
    "matplotlib",
    "tensorboard",
)
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "build_export_depend", "buildtool_depend")


def manifest_dependencies(package: str) -> set[str]:
    """What a package's package.xml makes colcon and rosdep install or build first (tests excluded)."""
    root = ET.parse(WORKSPACE_SRC / package / "package.xml").getroot()
    assert root.findtext("name") == package, f"{package}/package.xml names {root.findtext('name')}"
    return {el.text.strip() for tag in DEPEND_TAGS for el in root.iter(tag)}


def dependency_closure(packages: tuple[str, ...]) -> set[str]:
    """Everything ``packages`` need, following the workspace's own packages transitively."""
    workspace = {p.name for p in WORKSPACE_SRC.iterdir() if (p / "package.xml").exists()}
    seen, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        for dep in manifest_dependencies(package) - seen:
            seen.add(dep)
            if dep in workspace:
                todo.append(dep)
    return seen


def test_robot_side_manifests_need_nothing_from_training() -> None:
    closure = dependency_closure(ROBOT_SIDE)
    assert not closure & set(TRAINING_SIDE), (
        f"the robot side depends on {sorted(closure & set(TRAINING_SIDE))}"
    )
    leaked = sorted(
        d for d in closure if any(key in d.lower() for key in TRAINING_KEYS) and "onnxruntime" not in d
    )
    assert not leaked, f"the robot side depends on training packages {leaked}"
    assert "pidog_description" in closure and "rclpy" in closure
    # So the check can fail: the training side does reach pidog_sim.
    assert "pidog_sim" in dependency_closure(("pidog_learning",))


def test_every_command_name_belongs_to_one_tool() -> None:
    # Two packages once both installed `pidog-calibrate` (servo offsets and command calibration):
    # whichever was installed last answered, so one documented command ran the other tool.
    from importlib.metadata import entry_points

    ours = [
        ep
        for ep in entry_points(group="console_scripts")
        if ep.dist is not None and ep.dist.metadata["Name"].replace("-", "_") in ROBOT_SIDE + TRAINING_SIDE
    ]
    names = [ep.name for ep in ours]
    assert len(ours) >= 10, names  # the five packages are installed (make setup)
    assert sorted({n for n in names if names.count(n) > 1}) == []
    tools = {ep.name: ep.value for ep in ours}
    assert tools["pidog-calibrate"] == "pidog_hw.calibrate:main"
    assert tools["pidog-calibrate-commands"] == "pidog_learning.command_calibration:main"


def colcon_build(base_paths: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    return subprocess.run(
        [
            colcon,
            "build",
            "--symlink-install",
            "--base-paths",
            str(base_paths),
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


def test_colcon_builds_the_workspace(tmp_path: Path) -> None:
    result = colcon_build(WORKSPACE_SRC, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 packages finished" in result.stdout
    # ros2 run looks for executables in <install>/<pkg>/lib/<pkg>/.
    executables = [
        ("pidog_sim", "sim_node"),
        ("pidog_learning", "learning_node"),
        ("pidog_control", "policy_node"),
        ("pidog_control", "teleop_gait_node"),
        ("pidog_hw", "hw_node"),
    ]
    for pkg, exe in executables:
        assert (tmp_path / "install" / pkg / "lib" / pkg / exe).exists(), f"{pkg} {exe} not installed"
    assert not (tmp_path / "install" / "pidog_learning" / "lib" / "pidog_learning" / "policy_node").exists()
    share = tmp_path / "install" / "pidog_description" / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "pidog_description").exists()


def test_colcon_builds_the_robot_side_alone(tmp_path: Path) -> None:
    # The Pi's workspace: only the robot-side packages, a plain `colcon build`, no select flags.
    src = tmp_path / "src"
    for package in ROBOT_SIDE:
        shutil.copytree(
            WORKSPACE_SRC / package, src / package, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
        )
    result = colcon_build(src, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 packages finished" in result.stdout
    assert (tmp_path / "install" / "pidog_control" / "lib" / "pidog_control" / "policy_node").exists()
