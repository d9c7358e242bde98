"""The start/spin/stop boilerplate every node of the stack shares (needs rclpy, like messages.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import NoReturn

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def refuse_start(message: str, exit_code: int = 2) -> NoReturn:
    """A node that cannot start says why (stderr) and exits non-zero: no crash loop, no traceback."""
    print(message, file=sys.stderr, flush=True)
    rclpy.try_shutdown()
    raise SystemExit(exit_code)


SHUTDOWN_GRACE_S = 1.0  # how long a RuntimeError waits for the context to shut down


def _context_shuts_down(grace_s: float) -> bool:
    """Whether rclpy's context is shut down, or shuts down within ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def spin_node(node: Node, on_shutdown: Callable[[], None] | None = None) -> None:
    """Spin until Ctrl-C or an external shutdown, then clean up: ``on_shutdown``, node, rclpy."""
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Two faces of Ctrl-C, both a shutdown, not a failure: rclpy's signal handler may
        # invalidate the context while the executor builds its wait set (RCLError), and the
        # KeyboardInterrupt may land while rclpy converts a message, which pybind11 reports as
        # "Unable to convert call argument" while rclpy.ok() still reads true (sim_node exited
        # 1 that way in one CI run, 2026-12-05). Ctrl-C shuts the context down, so a RuntimeError
        # whose context does not shut down within the grace is a real one.
        if not _context_shuts_down(SHUTDOWN_GRACE_S):
            raise
    finally:
        if on_shutdown is not None:
            on_shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
