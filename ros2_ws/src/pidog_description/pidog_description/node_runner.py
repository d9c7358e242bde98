"""The start/spin/stop boilerplate every node of the stack shares (needs rclpy, like messages.py)."""

from __future__ import annotations

import sys
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


def spin_node(node: Node, on_shutdown: Callable[[], None] | None = None) -> None:
    """Spin until Ctrl-C or an external shutdown, then clean up: ``on_shutdown``, node, rclpy."""
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # rclpy's signal handler may invalidate the context while the executor builds its
        # wait set (RCLError, a RuntimeError): a shutdown, not a failure.
        if rclpy.ok():
            raise
    finally:
        if on_shutdown is not None:
            on_shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
