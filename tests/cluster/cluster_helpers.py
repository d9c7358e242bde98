"""A real Ray cluster on loopback (helpers for tests/cluster): a head and a second node, each its
own ``ray start --block``.

Every Ray process binds 127.0.0.1 only. Each node has a temp dir of its own and free ports
picked here (no fixed port is shared with another cluster on the machine). Teardown is
scoped to what this fixture started: SIGTERM to each node's ``ray start --block`` (which stops
that node's processes), then SIGKILL to anything left whose command line names one of our
temp dirs. It runs even when a test fails, and never touches another Ray on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAY_CLI = Path(sys.executable).with_name("ray")
WORKER_RESOURCE = "pidog_test_worker"  # custom resource only the second node has
# Quick node-death detection (default ~30 s), so a killed node's trial is retried sooner.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port that is free now and was not handed out before in this test session.

    The kernel may give the same free port to two successive binds once the first socket is
    closed; Ray refuses to start when two of its components are given one port (a CI run failed
    so: client server and dashboard agent both on one port), so every port is handed out once.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


# Token authentication with a token of this test session's own: independent of whatever
# ~/.ray/auth_token holds (Ray would switch token mode on or off depending on that file).
SESSION_TOKEN = secrets.token_hex(32)


def ray_env() -> dict[str, str]:
    """Environment of every process that talks to the test cluster: loopback only."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # pidog_learning.ray_cluster.LOOPBACK_ENV
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=SESSION_TOKEN,
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        **FAST_HEALTH_CHECK,
    )
    return env


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def raylet_pid(self) -> int:
        pids = [
            pid
            for pid in processes_mentioning(str(self.temp_dir))
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet"
        ]
        assert len(pids) == 1, f"expected one raylet for {self.name}, found {pids}"
        return pids[0]

    def kill_hard(self) -> None:
        """The machine dies: SIGKILL its raylet (workers go with it), then the rest of the node."""
        os.kill(self.raylet_pid(), signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in processes_mentioning(str(self.temp_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class LoopbackCluster:
    port: int
    root: Path
    head: RayNode | None = None
    worker: RayNode | None = None
    node_ids: dict[str, str] = field(default_factory=dict)  # "head"/"worker" -> Ray node id

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, name: str, cmd: list[str], extra: list[str]) -> RayNode:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"{name[0]}", dir=self.root))
        ports = {
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        args = [
            *cmd,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--temp-dir={temp_dir}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            *(f"{flag}={port}" for flag, port in ports.items()),
            *extra,
        ]
        log = self.root / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env(name))
        return RayNode(name, temp_dir, proc, log)

    def env(self, name: str = "driver") -> dict[str, str]:
        env = ray_env()
        if name == "worker":
            # `ray start --address` refuses to run with cluster mode off; loopback_ray.py keeps
            # this node on 127.0.0.1 instead.
            env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        return env

    def start_head(self) -> None:
        self.head = self._start(
            "head",
            [str(RAY_CLI)],
            [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-port={free_port()}",
            ],
        )
        self.node_ids["head"] = self._wait_for_nodes(1, self.head)["head"]

    def start_worker(self) -> None:
        """(Re)start the second node, with the custom resource tests pin work to."""
        self.worker = self._start(
            "worker",
            [sys.executable, str(HERE / "loopback_ray.py")],
            [f"--address={self.address}", f"--resources={json.dumps({WORKER_RESOURCE: 1})}"],
        )
        self.node_ids["worker"] = self._wait_for_nodes(2, self.worker)["worker"]

    def ensure_worker(self) -> None:
        if self.worker is None or not self.worker.alive():
            self.start_worker()

    def nodes(self) -> list[dict]:
        """Alive nodes as the GCS sees them (asked from a separate driver process)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(json.dumps([n for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=self.env()
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _wait_for_nodes(self, count: int, node: RayNode, timeout: float = 90.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert node.alive(), f"ray start for {node.name} exited:\n{node.log.read_text()[-3000:]}"
            gcs_up = socket.socket()
            try:
                gcs_up.settimeout(1)
                reachable = gcs_up.connect_ex(("127.0.0.1", self.port)) == 0
            finally:
                gcs_up.close()
            if reachable:
                nodes = self.nodes()
                if len(nodes) >= count:
                    ids = {}
                    for n in nodes:
                        ids["worker" if WORKER_RESOURCE in n["Resources"] else "head"] = n["NodeID"]
                    return ids
            time.sleep(0.5)
        raise AssertionError(
            f"{node.name} did not join within {timeout:.0f} s:\n{node.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        for node in (self.worker, self.head):
            if node is not None:
                node.stop()


def listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses the given processes listen on (TCP), from `ss`."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    addresses = set()
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            local = line.split()[3]
            addresses.add(local.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:"))
    return addresses
