"""Connecting to Ray (optional dependency, ``requirements/ray.txt``) for sweeps and remote rollouts.

Importing this module does not import Ray: only ``pidog-sweep`` and a config with
``ray.address`` get that far, so the single-machine path (``make demo``, ``pidog-train``
without ``--ray-address``) never imports Ray (tests/cluster/test_ray_optional.py).

Addresses: ``local`` starts a private Ray on this machine (bound to 127.0.0.1), ``auto`` joins
the cluster a ``ray start`` on this machine belongs to, ``HOST:PORT`` is a head node's GCS
address (what ``ray start --head --port=PORT`` listens on). An address that does not answer is
reported before Ray is even asked (Ray itself would retry for a minute or more).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT_S = 10.0
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
# Ray rewrites a loopback address to this machine's outward-facing IP unless cluster mode is
# off (ray._private.ray_constants.ENABLE_RAY_CLUSTER); with it off every Ray process binds and
# connects on 127.0.0.1 only, which is what a local run or a loopback test cluster needs.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_MODE_ENV = "RAY_AUTH_MODE"


class ClusterError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or it cannot host what was asked for."""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    ip: str
    cpus: float
    resources: dict[str, float]
    is_head: bool


NOT_INSTALLED = (
    "Ray is not installed: pip install -r requirements/ray.txt (or pip install 'pidog_learning[ray]')"
)


def require_ray() -> None:
    """ClusterError unless Ray can be imported; does not import it (see connect)."""
    try:
        found = sys.modules["ray"] is not None if "ray" in sys.modules else find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ClusterError(NOT_INSTALLED)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(NOT_INSTALLED) from None
    return ray


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keep_on_loopback() -> None:
    """Keep Ray on 127.0.0.1 (set before Ray reads its constants; patched if it already has)."""
    os.environ[LOOPBACK_ENV] = "0"
    constants: Any = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _token_auth_like_ray_start() -> None:
    """Use the token a ``ray start`` on this machine would use.

    ``ray start`` switches token authentication on when RAY_AUTH_MODE is unset and a token
    exists (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, which a local Ray
    creates); ``ray.init(address=...)`` does not, and is then refused by such a head.
    """
    if os.environ.get(AUTH_MODE_ENV) is not None:
        return  # the user chose
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ[AUTH_MODE_ENV] = "token"


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ClusterError names the problem."""
    if address.startswith("ray://"):
        raise ClusterError(
            f"--ray-address {address!r}: Ray Client (ray://) is not supported; give the head's GCS "
            "address HOST:PORT (the --port of `ray start --head`, 6379 by default)"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(
            f"--ray-address {address!r} must be 'local', 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)"
        )
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = f"no answer within {timeout:.0f} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise ClusterError(
            f"--ray-address {address}: no Ray head answers at {host}:{port} ({reason}); start one with "
            f"`ray start --head --port={port}` or fix the address"
        ) from None


def check_ray_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Before any work: Ray is installed and the head answers (None: no Ray wanted, nothing to do)."""
    if address is None:
        return
    address = address.strip()
    if address not in ("local", "auto"):
        parse_address(address)
    require_ray()
    if address not in ("local", "auto"):
        check_reachable(address, timeout)


def connect(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Connect this process to Ray; returns True if it did (so the caller shuts it down).

    Inside a Ray worker (a sweep trial that asks for remote rollouts) the existing connection
    is reused and False is returned.
    """
    address = (address or "local").strip()
    require_ray()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return False
    # Environment switches first: Ray reads them once, when imported or initialised.
    if address == "local" or (address != "auto" and _is_loopback(parse_address(address)[0])):
        _keep_on_loopback()
    if address not in ("local", "auto"):
        check_reachable(address, timeout)
        _token_auth_like_ray_start()
    ray = import_ray()
    kwargs: dict[str, Any] = {"address": address, "logging_level": "WARNING"}
    if address == "local":
        # A private single-machine cluster: every core, loopback only, no dashboard, and a small
        # object store (observations, actions and trial results are kilobytes).
        kwargs.update(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--ray-address {address}: cannot join the Ray cluster: {exc}") from exc
    return True


def alive_nodes() -> list[NodeInfo]:
    ray = import_ray()
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = {k: float(v) for k, v in node.get("Resources", {}).items()}
        nodes.append(
            NodeInfo(
                node_id=node["NodeID"],
                ip=node.get("NodeManagerAddress", "?"),
                cpus=resources.get("CPU", 0.0),
                resources=resources,
                is_head="node:__internal_head__" in resources,
            )
        )
    return nodes


def current_node_id() -> str:
    return import_ray().get_runtime_context().get_node_id()


def shutdown(started: bool) -> None:
    ray = sys.modules.get("ray")
    if started and ray is not None:
        ray.shutdown()
