"""bag_recorder: real publishers in other processes -> a real rosbag2 that rosbags and the importer read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from pidog_description.topics import CMD_VEL_TOPIC, JOINT_COMMANDS_TOPIC, TELEOP_RECORDED_TOPICS
from pidog_learning.bag_import import import_bags

HERE = Path(__file__).resolve().parent
TS = get_typestore(Stores.ROS2_KILTED)
VX, WZ = 0.1, 0.2


def wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def record(
    spawn_node, monkeypatch, output: Path, storage: str, stop_signal: int, seconds: float = 3.0
) -> str:
    """Record the gait node and a sensor process; stop the recorder with ``stop_signal``; its log."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    recorder = spawn_node("pidog_control.bag_recorder", {"output": str(output), "storage": storage})
    spawn_node("pidog_control.teleop_gait_node")
    spawn_node("sensor_publisher", extra_args=[str(VX), str(WZ)])
    subscribed = wait_for(lambda: recorder.log().count("subscribed to") == len(TELEOP_RECORDED_TOPICS), 40)
    assert subscribed, recorder.log()
    time.sleep(seconds)
    recorder.proc.send_signal(stop_signal)
    assert recorder.proc.wait(timeout=20) == 0, recorder.log()
    return recorder.log()


@pytest.mark.ros
@pytest.mark.parametrize(("storage", "stop_signal"), [("mcap", signal.SIGINT), ("sqlite3", signal.SIGTERM)])
def test_recorded_bag_is_a_real_rosbag2(
    spawn_node, monkeypatch, tmp_path: Path, storage: str, stop_signal
) -> None:
    bag = tmp_path / "teleop_bag"
    log = record(spawn_node, monkeypatch, bag, storage, stop_signal)
    assert "closed" in log
    assert (bag / "metadata.yaml").is_file()

    with Reader(bag) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert {t: c.msgtype for t, c in topics.items()} == TELEOP_RECORDED_TOPICS
        for conn in topics.values():
            # Definitions and hashes travel with the bag, for ros2 bag play on another machine.
            assert conn.msgdef.data and conn.digest.startswith("RIHS01_")
            assert conn.msgcount > 0
        assert topics[JOINT_COMMANDS_TOPIC].msgcount >= 100  # 3 s at 50 Hz, minus start-up
        raw_cmd_vel = []
        for conn, _t, raw in reader.messages():
            TS.deserialize_cdr(raw, conn.msgtype)  # every message is well-formed CDR of its type
            if conn.topic == CMD_VEL_TOPIC:
                raw_cmd_vel.append(raw)
    # The bytes are those on the wire: exactly the CDR encoding of what was published.
    V3, Twist = TS.types["geometry_msgs/msg/Vector3"], TS.types["geometry_msgs/msg/Twist"]
    expected = bytes(TS.serialize_cdr(Twist(V3(VX, 0.0, 0.0), V3(0.0, 0.0, WZ)), "geometry_msgs/msg/Twist"))
    assert raw_cmd_vel and all(bytes(r) == expected for r in raw_cmd_vel)

    demos, report = import_bags([bag])
    assert "recorded on /gait/phase" in report.bags[0].phase_source
    assert len(demos) >= 80
    assert report.bags[0].storage == storage


@pytest.mark.ros
def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "old_bag"
    existing.mkdir()
    (existing / "metadata.yaml").write_text("precious")
    run = subprocess.run(
        [sys.executable, "-m", "pidog_control.bag_recorder", "--ros-args", "-p", f"output:={existing}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "'output'" in run.stdout + run.stderr and "exists" in run.stdout + run.stderr
    assert (existing / "metadata.yaml").read_text() == "precious"


@pytest.mark.ros
def test_unknown_storage_is_refused(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pidog_control.bag_recorder",
            "--ros-args",
            "-p",
            f"output:={tmp_path / 'bag'}",
            "-p",
            "storage:=zip",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "'storage'" in run.stdout + run.stderr
    assert not (tmp_path / "bag").exists()
