"""hw_node fails safe (issue 18), each behaviour tested with hw_node as its own process over DDS
on the register-level emulated I2C bus; the emulated world (battery, MCU reset, IMU motion) is
changed through the emulator's control file, the way the physical world would change under it.

Timing assertions compare emulator-log timestamps (CLOCK_MONOTONIC, shared by all processes)
with generous margins: the machine running the tests is loaded.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from hw_facts import LEG_CHANNELS, TICK_US, expected_pulse_us, read_jsonl
from hw_io import Listener, channel_writes, latest_pulses
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.robot import JOINT_NAMES
from pidog_description.topics import BATTERY_TOPIC, HW_ARMED_TOPIC_NAME, JOINT_COMMANDS_TOPIC, STREAM_QOS
from pidog_hw.emulation import write_control

pytestmark = pytest.mark.ros
COMMAND_DEG = [20.0, -30.0, 25.0, -35.0, 40.0, -20.0, 45.0, -15.0]
STAND_US = expected_pulse_us(np.degrees(STAND_POSE).tolist())
LIE_US = expected_pulse_us(np.degrees(LIE_POSE).tolist())
COMMAND_US = expected_pulse_us(COMMAND_DEG)
SEQUENCE_US_PER_TICK = 60.0 * 0.02 * 2000.0 / 180.0  # 60 deg/s at 50 Hz, in pulse microseconds


# The command timeout of these tests: twice hw_node's default 0.3 s. The tests' own 20 ms command
# streams (a Python loop in the test process) stalled for 0.31 s beside the sysid fit and the Ray
# tests on a 2-core machine, twice, and tripped the default where the test was about something else.
WATCHDOG_S = 0.6


def near(pulses: np.ndarray, expected: np.ndarray, tol: float = TICK_US) -> bool:
    return bool(np.abs(pulses - expected).max() <= tol)


def hw_params(tmp_path: Path, **extra) -> dict:
    params = {
        "i2c_bus": "emulated",
        "emulator_log": str(tmp_path / "i2c.jsonl"),
        "emulator_control": str(tmp_path / "world.json"),
        "imu_calibration_s": 0.0,
        "shutdown_pose": "limp",
        "command_timeout_s": WATCHDOG_S,
    }
    params.update(extra)
    return params


def wait_pulses(io: Listener, log: Path, expected: np.ndarray, timeout: float = 8.0) -> None:
    assert io.probe.spin_until(lambda: near(latest_pulses(log), expected), timeout), (
        f"pulses {latest_pulses(log).round(1).tolist()}, expected {expected.round(1).tolist()}"
    )


def test_disarmed_start_arming_one_source_and_command_watchdog(spawn_node, ros_probe, tmp_path: Path) -> None:
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, command_timeout_action="lie"))
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)  # stood up by itself, then waits for an operator
    assert io.armed() is False
    wait_pulses(io, log, STAND_US)

    io.command(COMMAND_DEG, 1.0)
    assert near(latest_pulses(log), STAND_US), "a disarmed hw_node must not execute /joint_commands"
    assert "/joint_commands ignored: disarmed" in node.log()

    assert io.arm().success
    assert ros_probe.spin_until(lambda: io.last[HW_ARMED_TOPIC_NAME].data, 5.0)
    intruder = ros_probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    ros_probe.spin_until(lambda: intruder.get_subscription_count() > 0, 5.0)
    io.command(COMMAND_DEG, 3.0)  # slewed onto the command at sequence speed
    wait_pulses(io, log, COMMAND_US, timeout=3.0)
    intruding = JointState(name=list(JOINT_NAMES), position=[0.0] * 8)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # a second source (a sim launch on the same domain) joins
        intruder.publish(intruding)
        io.command(COMMAND_DEG, 0.02)
    assert near(latest_pulses(log), COMMAND_US), (
        f"commands from a second publisher are not executed\n--- hw_node\n{node.log()[-3000:]}"
    )
    assert "a second /joint_commands publisher" in node.log()

    # The first source dies (policy_node crashed mid-walk).
    last_command = io.last_publish
    io.wait_state("moving_to_pose", timeout=3.0)
    moved = [
        e
        for e in channel_writes(log)
        if e["t"] > last_command
        and abs(e["pulse_us"] - COMMAND_US[LEG_CHANNELS.index(e["channel"])]) > TICK_US
    ]
    reaction = moved[0]["t"] - last_command
    print(f"command watchdog: legs ramping to stand {reaction:.3f} s after the last command")
    assert reaction < WATCHDOG_S + 0.45, "ramp to stand soon after the timeout (+ a loaded machine's margin)"
    status = io.status("pidog_hw: safety", lambda s: s.level == DiagnosticStatus.ERROR)
    assert "command timeout" in status.message
    io.wait_state("disarmed", timeout=10.0)
    assert near(latest_pulses(log), LIE_US), "command_timeout_action lie: stand, then lie down"
    writes = channel_writes(log)
    after = [e for e in writes if e["t"] > last_command]
    for channel in LEG_CHANNELS:  # never faster than the sequence speed on the way down
        pulses = [e["pulse_us"] for e in after if e["channel"] == channel]
        assert np.abs(np.diff(pulses)).max() <= SEQUENCE_US_PER_TICK + TICK_US
    assert [e for e in read_jsonl(log) if "violation" in e] == []


def test_a_held_up_control_loop_is_reported_with_its_cause(spawn_node, ros_probe, tmp_path: Path) -> None:
    """hw_node blocked 0.8 s in an I2C transaction (the emulated bus stretches one, as a hung bus
    would) says, in its log and on /diagnostics, that its loop was held up, that it was not for
    lack of CPU, and, while it was stuck, where: every thread's stack, naming the blocking call.
    The watchdog and the fall check can act no sooner than that loop runs."""
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, start_armed=True))
    io = Listener(ros_probe)
    io.wait_state("armed", timeout=30.0)
    io.status("pidog_hw: safety", lambda s: s.level == DiagnosticStatus.OK)
    write_control(tmp_path / "world.json", bus_stall_s=0.8)
    status = io.status("pidog_hw: safety", lambda s: s.level == DiagnosticStatus.WARN)
    values = {v.key: v.value for v in status.values}
    assert "control loop held up" in status.message, status.message
    assert int(values["loop_stalls"]) >= 1 and float(values["longest_loop_gap_s"]) >= 0.7, values
    assert "control loop held up" in node.log()
    stall = values["longest_loop_stall"]  # a loaded machine may add short stalls of its own
    if "waiting for a CPU" in stall:  # the kernel keeps scheduler statistics here
        assert float(stall.split("blocked ")[1].split(" s")[0]) >= 0.5, stall
    # faulthandler's trace, printed 0.5 s into the stall (stall_trace_s), most recent call first.
    # A loaded machine may starve the loop for 0.5 s on its own and print another trace first:
    # one of them must name the stalled call and the hw_node callback that made it: the stall
    # lands on the next transaction, whichever of the bus's callbacks makes it (the battery
    # check's too, once a CI run: it shares the executor's thread with the control loop).
    traces = node.log().split("Timeout (0:00:00.500000)!")[1:]
    assert traces, node.log()[-3000:]
    assert any(
        re.search(r'i2c_bus\.py", line \d+ in _transaction', t)
        and re.search(r'hw_node\.py", line \d+ in _(imu_tick|drive|publish_joint_states|battery_tick)', t)
        for t in traces
    ), traces[-1][:3000]
    io.status("pidog_hw: safety", lambda s: s.level == DiagnosticStatus.OK)  # one report, then ok


def test_deadman_arming_needs_the_operator_and_losing_it_disarms(
    spawn_node, ros_probe, tmp_path: Path
) -> None:
    """The operator's keyboard_teleop (a real process) is the heartbeat; killing it as a dropped
    SSH session would disarms the robot while the policy's commands still stream."""
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, deadman_timeout_s=0.5))
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    refused = io.arm()
    assert not refused.success and "no operator heartbeat" in refused.message, refused.message

    teleop = subprocess.Popen(
        [sys.executable, "-u", "-m", "pidog_control.keyboard_teleop"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert ros_probe.spin_until(lambda: io.arm().success, 30), "arming refused with the operator present"
        io.command(COMMAND_DEG, 3.0)  # the policy's stream, slewed onto at sequence speed
        wait_pulses(io, log, COMMAND_US, timeout=3.0)
        teleop.kill()  # the operator's link drops: no quit, no last zero command
        teleop.wait(10)
        killed = time.monotonic()
        # The policy keeps commanding; the deadman alone must stop it.
        stopped = False
        while not stopped and time.monotonic() - killed < 5.0:
            io.command(COMMAND_DEG, 0.1)
            stopped = bool(io.states) and io.states[-1] in ("moving_to_pose", "disarmed")
        reaction = time.monotonic() - killed
        print(f"deadman: disarmed {reaction:.2f} s after the operator's process died")
        assert stopped, f"still {io.states[-1:]} 5 s after the operator vanished"
        assert reaction < 0.5 + 1.0, "disarm within deadman_timeout_s (0.5 s) + a loaded machine's margin"
        status = io.status("pidog_hw: safety", lambda st: st.level == DiagnosticStatus.ERROR)
        assert "deadman" in status.message, status.message
        io.wait_state("disarmed", timeout=10.0)
        assert near(latest_pulses(log), LIE_US), "stand, then command_timeout_action (lie)"
        assert not io.arm().success, "no operator: no arming"
    finally:
        if teleop.poll() is None:
            teleop.kill()
            teleop.wait(10)
    assert node.alive(), node.log()


@pytest.mark.parametrize("action", ["stand", "limp"])
def test_command_timeout_ends_standing_or_limp_as_configured(
    action: str, spawn_node, ros_probe, tmp_path: Path
) -> None:
    log = tmp_path / "i2c.jsonl"
    spawn_node("pidog_hw.hw_node", hw_params(tmp_path, command_timeout_action=action, start_armed=True))
    io = Listener(ros_probe)
    io.wait_state("armed", timeout=30.0)
    io.command(COMMAND_DEG, 4.0)  # after the stand-up, slewed onto the stream at sequence speed
    wait_pulses(io, log, COMMAND_US, timeout=3.0)
    io.wait_state("disarmed", timeout=10.0)  # the stream stopped: the watchdog's sequence ran
    if action == "stand":
        ros_probe.spin_for(0.5)
        assert near(latest_pulses(log), STAND_US), "command_timeout_action stand: stays standing"
    else:
        assert ros_probe.spin_until(lambda: (latest_pulses(log) == 0).all(), 5.0), "stand, then limp"
        on = [e for e in channel_writes(log) if e["pulse_us"]][-8:]
        assert near(np.array([{e["channel"]: e["pulse_us"] for e in on}[c] for c in LEG_CHANNELS]), STAND_US)


def test_commands_delivered_late_do_not_keep_the_robot_walking(spawn_node, ros_probe, tmp_path: Path) -> None:
    """The watchdog judges a command by its header stamp, relative to the sender's own clock: a
    sender on a clock 5 s behind drives the robot, but a queue of its old commands delivered
    after it stopped (a starved executor, a DDS resend) does not: hw_node times out on them."""
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, start_armed=True))
    io = Listener(ros_probe)
    io.wait_state("armed", timeout=30.0)
    clock = ros_probe.node.get_clock()
    sender_offset_ns = 5_000_000_000

    def publish(joint_deg: list[float], stamp_ns: int, seconds: float) -> None:
        msg = JointState(name=list(JOINT_NAMES), position=[math.radians(d) for d in joint_deg])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
                stamp_ns or clock.now().nanoseconds - sender_offset_ns, 1_000_000_000
            )
            io.commands.publish(msg)
            ros_probe.spin_for(0.02)

    publish(COMMAND_DEG, 0, 4.0)  # live commands, stamped by the 5 s slow clock
    wait_pulses(io, log, COMMAND_US, timeout=3.0)
    assert "stale" not in node.log()
    # The sender is gone; a backlog of what it sent keeps arriving, all stamped 1 s ago.
    backlog_stamp = clock.now().nanoseconds - sender_offset_ns - 1_000_000_000
    other_deg = [d + 10.0 for d in COMMAND_DEG]
    publish(other_deg, backlog_stamp, 2.0)
    assert io.states and io.states[-1] in ("moving_to_pose", "disarmed"), io.states[-3:]
    assert not near(latest_pulses(log), expected_pulse_us(other_deg)), "old commands were executed"
    assert "stale /joint_commands dropped" in node.log()
    assert "stale ones dropped since" in node.log(), "the timeout says why the commands stopped counting"
    status = io.status("pidog_hw: commands", lambda s: "stale" in s.message)
    assert int({v.key: v.value for v in status.values}["stale_commands"]) >= 3  # until it disarmed


def test_mcu_reset_recover_stands_up_again_disarmed(spawn_node, ros_probe, tmp_path: Path) -> None:
    log, world = tmp_path / "i2c.jsonl", tmp_path / "world.json"
    write_control(world, battery_v=7.8)
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, mcu_reset_action="recover", start_armed=True))
    io = Listener(ros_probe)
    io.wait_state("armed", timeout=30.0)
    count = len(read_jsonl(log))
    write_control(world, mcu_reset_boot_s=0.3)
    assert ros_probe.spin_until(lambda: "mcu_reset_action=recover" in node.log(), 10.0), node.log()
    io.wait_state("disarmed", timeout=30.0)  # folded and stood up again, waiting for ~/arm
    entries = read_jsonl(log)[count:]
    assert "prescaler" in str(entries), "timers re-initialised"
    assert [e for e in entries if "violation" in e] == []
    assert near(latest_pulses(log), STAND_US)
    assert io.armed() is False
    assert io.arm().success, "no latched fault: the operator may arm again"


ESTOP_ONCE = """
import sys, time, rclpy
from std_msgs.msg import Bool
from pidog_description.topics import ESTOP_TOPIC, LATCHED_QOS
rclpy.init()
node = rclpy.create_node("estop_once")
pub = node.create_publisher(Bool, ESTOP_TOPIC, LATCHED_QOS)
end = time.monotonic() + 20
while pub.get_subscription_count() == 0 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
pub.publish(Bool(data=True))
time.sleep(0.5)  # like `ros2 topic pub --once`: publish, then exit
sys.exit(0 if pub.get_subscription_count() else 3)
"""


def test_one_shot_estop_latches_survives_restart_and_needs_reset(
    spawn_node, ros_probe, tmp_path: Path
) -> None:
    state_file = tmp_path / "latch.json"
    log = tmp_path / "i2c.jsonl"
    params = hw_params(tmp_path, state_file=str(state_file), estop_behavior="hold", shutdown_pose="lie")
    node = spawn_node("pidog_hw.hw_node", params)
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    assert io.arm().success
    io.command(COMMAND_DEG, 3.0)
    wait_pulses(io, log, COMMAND_US, timeout=2.0)

    once = subprocess.run([sys.executable, "-c", ESTOP_ONCE], timeout=60, capture_output=True, text=True)
    assert once.returncode == 0, once.stderr
    io.wait_state("estop", timeout=5.0)
    count = len(channel_writes(log))
    io.command(COMMAND_DEG[::-1], 1.0)  # the publisher is gone; commands keep coming
    assert len(channel_writes(log)) == count, "hold: nothing is written while e-stopped"
    io.estop.publish(Bool(data=False))  # a stray false from anyone does not release it
    ros_probe.spin_for(0.5)
    assert io.states[-1] == "estop" and "does not release the latched e-stop" in node.log()
    refused = io.arm()
    assert not refused.success and "e-stop" in refused.message

    assert node.stop() == 0
    tail = channel_writes(log)[count:]
    assert [e["pulse_us"] for e in tail] == [0.0] * 8, "exit while e-stopped: stop the pulses, no lie-down"

    log2 = tmp_path / "i2c_restart.jsonl"
    io.states.clear()
    node = spawn_node("pidog_hw.hw_node", {**params, "emulator_log": str(log2)})
    io.wait_state("estop", timeout=30.0)  # the latch survived the restart
    ros_probe.spin_for(1.0)
    assert channel_writes(log2) == [], "a restart under a latched e-stop sends no pulse"
    assert "e-stop latched before this start" in node.log()

    answer = io.reset()
    assert answer.success, answer.message
    io.wait_state("disarmed", timeout=15.0)  # released into the stand pose, slowly, not walking
    writes = channel_writes(log2)
    first = {e["channel"]: e["pulse_us"] for e in writes[:8]}
    assert any(v == 0.0 for v in first.values()), "servos switched on one at a time"
    on = {}
    for e in writes:
        if e["pulse_us"] and e["channel"] not in on:
            on[e["channel"]] = e["pulse_us"]
    assert near(np.array([on[c] for c in LEG_CHANNELS]), LIE_US), "pose unknown after a restart: fold first"
    assert near(latest_pulses(log2), STAND_US)
    assert io.armed() is False
    assert '"estop": null' in state_file.read_text()


def test_low_battery_and_mcu_reset(spawn_node, ros_probe, tmp_path: Path) -> None:
    log, world = tmp_path / "i2c.jsonl", tmp_path / "world.json"
    spawn_node(
        "pidog_hw.hw_node", hw_params(tmp_path, battery_low_s=0.5, imu_backend="none", estop_behavior="limp")
    )
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    io.wait_for(BATTERY_TOPIC)
    assert io.last[BATTERY_TOPIC].voltage == pytest.approx(7.8, abs=0.01)
    assert io.status("pidog_hw: battery", lambda s: s.level == DiagnosticStatus.OK).message == "7.80 V"

    write_control(world, battery_v=6.1)  # below battery_low_v 6.4 V
    io.wait_state("low_battery", timeout=5.0)
    assert ros_probe.spin_until(lambda: (latest_pulses(log) == 0).all(), 8.0), "lie down, then limp"
    lie_writes = [e for e in channel_writes(log) if e["pulse_us"]][-8:]
    assert near(
        np.array([{e["channel"]: e["pulse_us"] for e in lie_writes}[c] for c in LEG_CHANNELS]), LIE_US
    )
    refused = io.reset()
    assert not refused.success and "battery 6.10 V" in refused.message
    write_control(world, battery_v=7.8)
    ros_probe.spin_for(1.0)
    assert io.reset().success
    io.wait_state("disarmed", timeout=10.0)

    count = len(read_jsonl(log))
    write_control(world, mcu_reset_boot_s=0.3)  # a brownout resets the Robot HAT MCU
    io.wait_state("mcu_reset", timeout=5.0)
    status = io.status("pidog_hw: safety", lambda s: s.level == DiagnosticStatus.ERROR)
    assert "stopped answering and answers again: it reset" in status.message
    entries = read_jsonl(log)[count:]
    assert any(e.get("nack") for e in entries), "the MCU did not answer while it booted"
    assert [e for e in entries if "violation" in e] == [], "no channel written before its timer is set up"
    assert "prescaler" in str(entries), "timers re-initialised"
    assert ros_probe.spin_until(lambda: (latest_pulses(log) == 0).all(), 3.0), "mcu_reset_action fault: limp"
    assert io.reset().success
    io.wait_state("disarmed", timeout=10.0)
    assert near(latest_pulses(log), STAND_US)

    io.estop.publish(Bool(data=True))  # estop_behavior limp: the pulses stop
    io.wait_state("estop", timeout=5.0)
    assert ros_probe.spin_until(lambda: (latest_pulses(log) == 0).all(), 3.0)


def test_pick_up_and_fall_stop_the_legs(spawn_node, ros_probe, tmp_path: Path) -> None:
    log, world = tmp_path / "i2c.jsonl", tmp_path / "world.json"
    spawn_node("pidog_hw.hw_node", hw_params(tmp_path, fallen_limp_s=0.6))
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    assert io.arm().success
    io.command(COMMAND_DEG, 3.0)
    wait_pulses(io, log, COMMAND_US, timeout=2.0)

    write_control(world, imu_specific_force=[0.0, 0.0, 0.0])  # dropped / swung up: free fall
    end = time.monotonic() + 3.0
    while io.states[-1] != "lifted" and time.monotonic() < end:
        io.command(COMMAND_DEG[::-1], 0.05)
    assert io.states[-1] == "lifted"
    stopped_at = time.monotonic()
    io.command(COMMAND_DEG[::-1], 0.4)
    moved = [e for e in channel_writes(log) if e["t"] > stopped_at and e["pulse_us"]]
    assert moved == [], "legs stop: no new pulse while lifted"
    assert ros_probe.spin_until(lambda: (latest_pulses(log) == 0).all(), 3.0), "limp after fallen_limp_s"

    write_control(world, imu_specific_force=[0.0, 0.0, 9.81])  # put down
    ros_probe.spin_for(0.5)
    assert io.reset().success
    io.wait_state("disarmed", timeout=10.0)

    write_control(world, imu_specific_force=[0.0, 0.0, 9.81 + 4.0])  # lifted briskly
    io.wait_state("lifted", timeout=3.0)
    write_control(world, imu_specific_force=[0.0, 0.0, 9.81])
    ros_probe.spin_for(0.5)
    assert io.reset().success

    tilt = 1.2  # rad, on its side
    write_control(world, imu_specific_force=[0.0, 9.81 * math.sin(tilt), 9.81 * math.cos(tilt)])
    io.wait_state("fallen", timeout=5.0)
    refused = io.reset()
    assert not refused.success and "still tilted" in refused.message


def test_second_ctrl_c_during_lie_down_still_stops_the_pulses(spawn_node, ros_probe, tmp_path: Path) -> None:
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, shutdown_pose="lie", imu_backend="none"))
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    node.proc.send_signal(signal.SIGINT)
    # The node says when the lie-down (about 1 s) starts; the second Ctrl-C goes in after that.
    assert ros_probe.spin_until(lambda: "lying down before stopping the pulses" in node.log(), 10.0), (
        node.log()
    )
    node.proc.send_signal(signal.SIGINT)
    node.proc.wait(timeout=15)
    writes = channel_writes(log)
    assert [e["pulse_us"] for e in writes[-8:]] == [0.0] * 8, "pulses stopped"
    before = np.array([{e["channel"]: e["pulse_us"] for e in writes[-16:-8]}[c] for c in LEG_CHANNELS])
    assert not near(before, LIE_US), "the second Ctrl-C cut the lie-down short"
    assert "interrupted during lie-down: stopping the pulses now" in node.log()


def test_sigterm_stops_the_pulses_too(spawn_node, ros_probe, tmp_path: Path) -> None:
    """systemd and ros2 launch stop nodes with SIGTERM: the same shutdown as Ctrl-C."""
    log = tmp_path / "i2c.jsonl"
    node = spawn_node("pidog_hw.hw_node", hw_params(tmp_path, imu_backend="none"))
    io = Listener(ros_probe)
    io.wait_state("disarmed", timeout=30.0)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=15) is not None
    assert [e["pulse_us"] for e in channel_writes(log)[-8:]] == [0.0] * 8, node.log()


def test_bad_fail_safe_parameters_are_refused(spawn_node) -> None:
    node = spawn_node(
        "pidog_hw.hw_node",
        {"servo_backend": "dry_run", "imu_backend": "none", "command_timeout_action": "walk"},
    )
    node.proc.wait(timeout=30)
    assert node.proc.returncode == 2
    assert "parameter 'command_timeout_action' must be one of ['lie', 'limp', 'stand']" in node.log()
    assert JOINT_NAMES  # the joint order the log helpers assume
