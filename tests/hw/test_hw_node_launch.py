"""hw_node exactly as launch/robot.launch.xml configures it (only the I2C bus is the emulator).

The parameters come from parsing the launch file, so a change there is tested here: stand-up at
start, the `hold` e-stop (and its release through ~/reset), the default calibration path when
it is absent (a clear warning) and when it holds a corrupt file (a refusal naming it). HOME is
the test's own folder, so the default paths under ~ are the test's, never the user's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hw_facts import LEG_CHANNELS, TICK_US, expected_pulse_us, read_jsonl
from hw_io import Listener, latest_pulses
from std_msgs.msg import Bool, Empty

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.topics import IMU_TOPIC, JOINT_STATES_TOPIC, OPERATOR_HEARTBEAT_TOPIC, STREAM_QOS
from pidog_learning.launch_files import parse_launch

pytestmark = pytest.mark.ros

ROBOT_LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "robot.launch.xml"


def robot_launch_hw_args(tmp_path: Path) -> list[str]:
    """hw_node's command line as robot.launch.xml starts it, on the emulated bus, logging it."""
    graph = parse_launch(ROBOT_LAUNCH, {"policy_path": str(tmp_path / "unused.onnx"), "i2c_bus": "emulated"})
    (hw,) = [node for node in graph.nodes if node.executable == "hw_node"]
    assert hw.params["estop_behavior"] == "hold" and hw.params["startup_pose"] == "stand", hw.params
    return [*hw.ros_args(), "-p", f"emulator_log:={tmp_path / 'i2c.jsonl'}"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the node process inherits it: ~ is this folder
    return home


def test_stands_up_at_start_holds_on_estop_and_resets(
    tmp_path: Path, home: Path, spawn_node, ros_probe
) -> None:
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", None, robot_launch_hw_args(tmp_path))
    io = Listener(ros_probe)
    io.wait_for(JOINT_STATES_TOPIC, IMU_TOPIC, timeout=60)
    default = home / ".config" / "pidog_hw" / "calibration.yaml"
    assert ros_probe.spin_until(
        lambda: f"no calibration file given and {default} does not exist" in node.log(), 10
    )
    assert "all servo offsets are zero (run pidog-calibrate)" in node.log()

    # Stand-up: from the folded (lie) pose to the stand pose, then disarmed until ~/arm.
    io.wait_state("disarmed", timeout=60)
    writes = [e for e in read_jsonl(log) if "channel" in e]
    assert writes, "no pulses at all"
    first = {}
    for e in writes:
        first.setdefault(e["channel"], e["pulse_us"])
    lie = expected_pulse_us(np.degrees(LIE_POSE).tolist())
    stand = expected_pulse_us(np.degrees(STAND_POSE).tolist())

    assert np.abs(np.array([first[c] for c in LEG_CHANNELS]) - lie).max() < 2 * TICK_US, (
        "did not start folded"
    )
    assert np.abs(latest_pulses(log) - stand).max() <= TICK_US, "did not end at the stand pose"
    assert np.allclose(io.last[JOINT_STATES_TOPIC].position, STAND_POSE, atol=np.radians(0.5))

    # /estop true with estop_behavior hold: the servos keep the stand pose (pulses on, unchanged),
    # commands are ignored and arming is refused until ~/reset.
    io.estop.publish(Bool(data=True))
    io.wait_state("estop")
    n_writes = len(writes)
    io.command(np.degrees(STAND_POSE + 0.3).tolist(), 1.0)
    assert np.abs(latest_pulses(log) - stand).max() <= TICK_US, "hold: the pose must not change"
    held = [e["pulse_us"] for e in read_jsonl(log) if "channel" in e][n_writes:]
    assert 0.0 not in held, "hold must keep the pulses on"
    assert not io.arm().success
    io.estop.publish(Bool(data=False))
    assert ros_probe.spin_until(lambda: "/estop false does not release the latched e-stop" in node.log(), 10)
    assert io.states[-1] == "estop"
    result = io.reset()
    assert result.success, result.message
    io.wait_state("disarmed", timeout=30)
    # robot.launch.xml turns the deadman on: no operator heartbeat, no arming.
    refused = io.arm()
    assert not refused.success and "no operator heartbeat" in refused.message, refused.message
    heartbeat = ros_probe.node.create_publisher(Empty, OPERATOR_HEARTBEAT_TOPIC, STREAM_QOS)
    ros_probe.node.create_timer(0.1, lambda: heartbeat.publish(Empty()))
    assert ros_probe.spin_until(lambda: io.arm().success, 10), "arming refused with a heartbeat"
    io.wait_state("armed", timeout=30)
    assert node.stop() == 0


def test_a_corrupt_calibration_at_the_default_path_is_refused_by_name(
    tmp_path: Path, home: Path, spawn_node
) -> None:
    default = home / ".config" / "pidog_hw" / "calibration.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("offsets_deg: [this is: not valid\n")
    node = spawn_node("pidog_hw.hw_node", None, robot_launch_hw_args(tmp_path))
    assert node.proc.wait(timeout=60) != 0, node.log()
    assert "parameter 'calibration_file'" in node.log() and str(default) in node.log(), node.log()
    assert "Traceback" not in node.log()
