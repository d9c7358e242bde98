"""spin_node, the shutdown every node of the stack shares: Ctrl-C ends a node cleanly (exit 0),
and a real error in a callback still ends it with that error, even though spin_node now gives a
RuntimeError a grace to turn out to be a Ctrl-C (node_runner.SHUTDOWN_GRACE_S)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros

NODE = """
import sys
import rclpy
from rclpy.node import Node
from pidog_description.node_runner import spin_node

rclpy.init()
node = Node("spin_node_probe")
if sys.argv[1] == "raise":
    def fail():
        raise RuntimeError("a real error in a callback")
    node.create_timer(0.05, fail)
else:
    node.create_timer(0.001, lambda: None)
print("spinning", flush=True)
spin_node(node)
print("cleaned up", flush=True)
"""


def start(mode: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", NODE, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "spinning", proc.stderr
    return proc


def test_ctrl_c_ends_a_node_cleanly() -> None:
    proc = start("idle")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "cleaned up" in out


def test_a_runtime_error_that_is_no_shutdown_still_ends_the_node_with_it() -> None:
    proc = start("raise")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "RuntimeError: a real error in a callback" in err
    assert "cleaned up" not in out
