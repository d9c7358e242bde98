"""keyboard_teleop: keys on stdin -> the right Twist on /cmd_vel."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from pidog_control.keyboard_teleop import apply_key, split_keys
from pidog_description.spec import COMMAND_LIMITS, TELEOP_STEPS, teleop_commands
from pidog_description.topics import CMD_VEL_TOPIC, ESTOP_TOPIC, LATCHED_QOS

STEPS = np.array(TELEOP_STEPS)


def test_keys_step_the_command_and_stay_within_limits() -> None:
    cmd = np.zeros(2)
    for key in split_keys("ww\x1b[Aa"):  # w, w, up arrow, a
        cmd = apply_key(cmd, key, STEPS)
    np.testing.assert_allclose(cmd, [0.15, 0.25])
    for key in split_keys("w" * 20 + "\x1b[C" * 20):  # far too fast, far right
        cmd = apply_key(cmd, key, STEPS)
    np.testing.assert_allclose(cmd, [COMMAND_LIMITS["vx"][1], COMMAND_LIMITS["wz"][0]])
    np.testing.assert_allclose(apply_key(cmd, "?", STEPS), cmd)  # unknown keys do nothing
    np.testing.assert_allclose(apply_key(cmd, " ", STEPS), [0.0, 0.0])


@pytest.mark.parametrize("steps", [TELEOP_STEPS, (0.04, 0.3)])
def test_teleop_commands_are_every_command_the_keys_reach_and_nothing_else(steps) -> None:
    """benchmarks/bench_deploy_gap checks a policy on every command the keyboard can send; that
    list must be what pressing keys gives, also for steps that do not divide the limits."""
    listed = set(teleop_commands(steps))
    rng = np.random.default_rng(0)
    keys = ["w", "s", "a", "d"]
    reached = set()
    for _ in range(200):
        cmd = np.zeros(2)
        for key in rng.choice(keys, size=40):
            cmd = apply_key(cmd, str(key), np.array(steps))
            reached.add((round(float(cmd[0]), 9), round(float(cmd[1]), 9)))
    assert reached <= listed, sorted(reached - listed)
    assert (COMMAND_LIMITS["vx"][1], 0.0) in listed and (
        COMMAND_LIMITS["vx"][0],
        COMMAND_LIMITS["wz"][0],
    ) in listed
    if steps == TELEOP_STEPS:
        assert reached == listed and len(listed) == 90
    else:  # up to the clipped limit, then one step back: not a whole number of steps from 0
        cmd = np.zeros(2)
        for key in "w" * 10 + "s":
            cmd = apply_key(cmd, key, np.array(steps))
        assert (round(COMMAND_LIMITS["vx"][1] - steps[0], 9), 0.0) in listed
        assert cmd[0] == pytest.approx(COMMAND_LIMITS["vx"][1] - steps[0])
    with pytest.raises(ValueError, match="positive"):
        teleop_commands((0.0, 0.25))


@pytest.mark.ros
def test_stdin_keys_publish_twists(ros_probe) -> None:
    from geometry_msgs.msg import Twist
    from std_msgs.msg import Bool

    got: list = []
    estops: list = []
    ros_probe.node.create_subscription(Twist, CMD_VEL_TOPIC, got.append, 50)
    ros_probe.node.create_subscription(Bool, ESTOP_TOPIC, estops.append, LATCHED_QOS)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pidog_control.keyboard_teleop"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        # The teleop repeats its command at 10 Hz: zero until a key arrives.
        assert ros_probe.spin_until(lambda: len(got) >= 2, 30), "no /cmd_vel from keyboard_teleop"
        assert got[-1].linear.x == 0.0 and got[-1].angular.z == 0.0

        def press(keys: str, vx: float, wz: float) -> None:
            proc.stdin.write(keys.encode())
            proc.stdin.flush()
            ok = ros_probe.spin_until(
                lambda: got and np.allclose([got[-1].linear.x, got[-1].angular.z], [vx, wz]), 10
            )
            assert ok, (
                f"after {keys!r} expected ({vx}, {wz}), last was ({got[-1].linear.x}, {got[-1].angular.z})"
            )

        press("www", 0.15, 0.0)
        press("a", 0.15, 0.25)
        press("d\x1b[Cs", 0.1, -0.25)
        press("w" * 10, 0.3, -0.25)
        press(" ", 0.0, 0.0)
        last_key = time.monotonic()
        press("w", 0.05, 0.0)
        # Still repeating while no key is pressed, so the gait node does not time out ...
        n = len(got)
        ros_probe.spin_for(0.6)
        assert len(got) - n >= 3 and got[-1].linear.x == pytest.approx(0.05)
        # ... but only for hold_s (1 s) after the last key: a silent keyboard stops the robot.
        assert ros_probe.spin_until(lambda: got[-1].linear.x == 0.0, 5.0), "no decay to zero"
        decay = time.monotonic() - last_key
        print(f"keyboard teleop: zero {decay:.2f} s after the last key")
        # hold_s is 1 s; the margin is for DDS and a loaded machine, not for a second hold.
        assert decay < 2.0, f"zero only {decay:.2f} s after the last key (hold_s 1 s)"
        n = len(got)
        ros_probe.spin_for(0.5)
        assert len(got) - n >= 2 and got[-1].linear.x == 0.0, "keeps publishing the zero command"

        proc.stdin.write(b"e")  # the e-stop key
        proc.stdin.flush()
        assert ros_probe.spin_until(lambda: estops and estops[-1].data is True, 10), "no /estop from 'e'"
        proc.stdin.write(b"q")
        proc.stdin.flush()
        assert proc.wait(timeout=15) == 0
        ros_probe.spin_for(0.3)
        assert got[-1].linear.x == 0.0 and got[-1].angular.z == 0.0  # quitting stops the robot
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.ros
def test_end_of_input_quits_cleanly() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pidog_control.keyboard_teleop"], input=b"ww", capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
