"""keyboard_teleop: drive ``/cmd_vel`` from the terminal, for machines without teleop_twist_keyboard.

Keys (arrow keys work too):   w / up  faster      s / down  slower
                              a / left  turn left  d / right turn right
                              space / x stop       e  E-STOP (latched)
                              q / Ctrl-C quit      k  keep going (hold it)

Each key changes the command by one step (``linear_step`` m/s, ``angular_step`` rad/s), clipped
to ``spec.COMMAND_LIMITS``. The command is re-published at ``rate_hz`` and falls back to zero
``hold_s`` (1 s) after the last key: a dropped SSH session or a walked-away operator stops the
robot. Any key restarts that second; ``k`` changes nothing else, so holding it (auto-repeat)
keeps the robot going at the current command. ``e`` publishes ``/estop`` true (latched; the
robot stays stopped until ``/hw_node/reset``). Quitting publishes a zero command first.

With every ``/cmd_vel`` it also sends the operator heartbeat (``/operator/heartbeat``): while
this program runs, hw_node's deadman (``deadman_timeout_s``) sees an operator; when it dies or
its SSH session drops, the heartbeat stops and the robot is disarmed.

On a terminal the keys act at once (raw mode). When stdin is not a terminal (a pipe, a test)
the same bytes are read from it, and end of input quits like ``q``.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from contextlib import contextmanager

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from std_msgs.msg import Bool, Empty

from pidog_description.node_runner import refuse_start
from pidog_description.spec import TELEOP_STEPS, clip_command
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    ESTOP_TOPIC,
    LATCHED_QOS,
    OPERATOR_HEARTBEAT_TOPIC,
    STREAM_QOS,
)

HELP = __doc__.split("\n\n")[1]

# Key -> change of (vx, wz) in steps; None = stop. Arrow keys arrive as ANSI escape sequences.
KEY_STEPS: dict[str, tuple[int, int] | None] = {
    "w": (1, 0),
    "\x1b[A": (1, 0),
    "s": (-1, 0),
    "\x1b[B": (-1, 0),
    "a": (0, 1),
    "\x1b[D": (0, 1),
    "d": (0, -1),
    "\x1b[C": (0, -1),
    " ": None,
    "x": None,
}
QUIT_KEYS = frozenset({"q", "\x03"})  # q, Ctrl-C in raw mode
ESTOP_KEYS = frozenset({"e"})


def split_keys(data: str) -> list[str]:
    """Split typed text into keys, keeping arrow-key escape sequences whole."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data.startswith("\x1b[", i) and i + 2 < len(data):
            keys.append(data[i : i + 3])
            i += 3
        else:
            keys.append(data[i])
            i += 1
    return keys


def apply_key(command: np.ndarray, key: str, steps: np.ndarray) -> np.ndarray:
    """The (vx, wz) command after pressing ``key``; unknown keys leave it unchanged."""
    if key not in KEY_STEPS:
        return command
    change = KEY_STEPS[key]
    if change is None:
        return np.zeros(2)
    return clip_command(command + np.asarray(change) * steps)


def twist_from_command(command: np.ndarray) -> Twist:
    msg = Twist()
    msg.linear.x, msg.angular.z = float(command[0]), float(command[1])
    return msg


@contextmanager
def raw_terminal(fd: int):
    """Keys without Enter and without echo, restored on exit; a no-op when fd is not a tty."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class KeyboardTeleop(Node):
    def __init__(self) -> None:
        super().__init__("keyboard_teleop")
        number = ParameterDescriptor(dynamic_typing=True)
        self.declare_parameter("linear_step", TELEOP_STEPS[0], number)
        self.declare_parameter("angular_step", TELEOP_STEPS[1], number)
        self.declare_parameter("rate_hz", 10.0, number)
        self.declare_parameter("hold_s", 1.0, number)
        steps = [self._positive("linear_step"), self._positive("angular_step")]
        self.steps = np.array(steps)
        self.period_s = 1.0 / self._positive("rate_hz")
        self.hold_s = self._positive("hold_s")
        self.command = np.zeros(2)
        self.last_key = time.monotonic()
        self.publisher = self.create_publisher(Twist, CMD_VEL_TOPIC, STREAM_QOS)
        self.estop_publisher = self.create_publisher(Bool, ESTOP_TOPIC, LATCHED_QOS)
        self.heartbeat_publisher = self.create_publisher(Empty, OPERATOR_HEARTBEAT_TOPIC, STREAM_QOS)
        self.create_timer(self.period_s, self.publish)

    def _positive(self, name: str) -> float:
        value = self.get_parameter(name).value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise ValueError(f"parameter '{name}' must be a positive number, got {value!r}")
        return float(value)

    def publish(self) -> None:
        if self.command.any() and time.monotonic() - self.last_key > self.hold_s:
            # Nobody is pressing anything (or the terminal is gone): stop, do not walk on.
            self.command = np.zeros(2)
            print(f"\rno key for {self.hold_s:g} s: stop", end="\r\n", file=sys.stderr, flush=True)
        self.publisher.publish(twist_from_command(self.command))
        self.heartbeat_publisher.publish(Empty())

    def press(self, key: str) -> bool:
        """Apply one key; False when it asks to quit."""
        if key in QUIT_KEYS:
            return False
        self.last_key = time.monotonic()
        if key in ESTOP_KEYS:
            self.command = np.zeros(2)
            self.estop_publisher.publish(Bool(data=True))
            self.publish()
            print(
                "\rE-STOP sent (latched): reset with /hw_node/reset", end="\r\n", file=sys.stderr, flush=True
            )
            return True
        new = apply_key(self.command, key, self.steps)
        if not np.array_equal(new, self.command):
            self.command = new
            self.publish()  # at once, not at the next repeat
            print(
                f"\rvx {new[0]:+.2f} m/s  wz {new[1]:+.2f} rad/s   ", end="\r\n", file=sys.stderr, flush=True
            )
        return True


def run(node: KeyboardTeleop, fd: int) -> None:
    """Read keys from ``fd`` and spin the node until quit or end of input."""
    running = True
    while running and rclpy.ok():
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            data = os.read(fd, 64).decode(errors="ignore")
            if not data:  # end of input
                break
            for key in split_keys(data):
                running = node.press(key)
                if not running:
                    break
        rclpy.spin_once(node, timeout_sec=0.0)


def stop(node: KeyboardTeleop, linger_s: float = 0.3) -> None:
    """Publish a zero command and give DDS a moment to deliver it before the process exits."""
    node.command = np.zeros(2)
    node.publish()
    end = time.monotonic() + linger_s
    while time.monotonic() < end and rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.05)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = KeyboardTeleop()
    except ValueError as exc:
        refuse_start(f"keyboard_teleop: {exc}")
    print(HELP, file=sys.stderr, flush=True)
    fd = sys.stdin.fileno()
    try:
        with raw_terminal(fd):
            run(node, fd)
    except KeyboardInterrupt:
        pass
    finally:
        if rclpy.ok():  # after Ctrl-C rclpy may already be shut down: nothing can be sent
            stop(node)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
