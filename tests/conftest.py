"""Shared test fixtures: a private DDS domain per session, node processes, an rclpy probe node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Before anything imports rclpy: discovery on loopback only, and a domain of this session's
# own so parallel runs (and CI) never hear each other. Valid Linux domains are 0..101.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(5 + os.getpid() % 95))
# pytest-xdist workers (`make test` runs two for the in-process tests) share the environment:
# each worker moves to a domain of its own, so rclpy nodes of the two never hear each other.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    _index = int(_WORKER[2:])
    _base = int(os.environ["ROS_DOMAIN_ID"])
    os.environ["ROS_DOMAIN_ID"] = str(_base + _index if _base + _index <= 101 else _base - _index)
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

# A shell without job control starts background commands (`make test &` in a script) with
# SIGINT ignored, and every process the tests start would inherit that: no Ctrl-C test could
# pass (found when a stress run launched that way failed all of them). The tests are about
# Ctrl-C, so they run with its normal meaning.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class NodeProcess:
    """A node started as its own OS process (``python -m module --ros-args ...``)."""

    def __init__(self, module: str, params: dict[str, object] | None, log_path: Path, extra_args: list[str]):
        cmd = [sys.executable, "-u", "-m", module, *extra_args]
        if params:
            cmd += ["--ros-args"]
            for key, value in params.items():
                if isinstance(value, bool):
                    value = "true" if value else "false"
                cmd += ["-p", f"{key}:={value}"]
        self.module = module
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy())

    def log(self) -> str:
        if not self._log.closed:  # stop() closes it; the log still reads after (a failed stop's message)
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def spawn_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start node processes; every one is stopped (SIGINT, then kill) after the test."""
    started: list[NodeProcess] = []

    def _spawn(
        module: str, params: dict[str, object] | None = None, extra_args: list[str] | None = None
    ) -> NodeProcess:
        log = tmp_path / f"{module.replace('.', '_')}_{len(started)}.log"
        node = NodeProcess(module, params, log, extra_args or [])
        started.append(node)
        return node

    yield _spawn
    for node in reversed(started):
        node.stop()


class RosProbe:
    """An in-test rclpy node with helpers to spin until something happened."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"test_probe_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def ros_probe() -> Iterator[RosProbe]:
    probe = RosProbe()
    yield probe
    probe.close()


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that start processes (node processes over DDS, the Ray cluster), and of
    those the ones that must run alone (the twin). `make test` runs the in-process tests on two
    pytest-xdist workers, then the process tests on two workers a file at a time, then the
    twin's tests one by one."""
    for item in items:
        cluster = item.path.is_relative_to(REPO_ROOT / "tests" / "cluster")
        if cluster or item.get_closest_marker("ros") or {"spawn_node", "ros_probe"} & set(item.fixturenames):
            item.add_marker(pytest.mark.processes)
        # The twin's physics is paced by the wall clock and slows down when the machine is
        # loaded, while policy_node keeps its 50 Hz wall-clock tick: beside another test the
        # gait runs fast against the twin's sim time and bounces harder than on any robot
        # (hw_node latched 'lifted' once in three parallel runs before it timed its IMU by the
        # twin's clock, docs/TWIN.md). A real robot's physics never slows.
        if item.path.is_relative_to(REPO_ROOT / "tests" / "twin") and item.get_closest_marker("processes"):
            item.add_marker(pytest.mark.alone)
