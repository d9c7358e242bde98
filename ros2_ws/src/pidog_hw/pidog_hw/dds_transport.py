"""Keep hw_node's DDS traffic off shared memory, so a subscriber that dies cannot stall its loop.

Fast DDS's shared-memory transport puts each reader's port, and the mutex that guards it, in a
segment the reader's process shares with every writer. A reader killed while it holds that
mutex (SIGKILL, an OOM kill, a segfault mid-read) leaves it locked, as we read the stacks below
(what the dead reader held was not inspected): a send to the port waits on it,
inside ``publish()``, which rclpy runs holding the GIL (seen: stalls of 1.0, 2.0 and 3.0 s, and
in the LOCALHOST range a publisher stuck for minutes; gdb put it in Fast DDS's
``SharedMemManager::Port::try_push``, locking the port's interprocess mutex). hw_node's
control loop publishes /joint_states, so a crashed policy_node could hold up the loop that
should notice the crash: 3.0 s in one CI run (2026-12-06). ``python -m benchmarks.bench_dds_kill``
(docs/benchmarks/dds_kill.md) kills six readers at once, 30 times: one round stalled the publisher
2.0 s; over UDP, where a dead reader is a port nobody reads, none did (longest call 17 ms).

So hw_node asks Fast DDS for its UDP transport only (``FASTDDS_BUILTIN_TRANSPORTS=UDPv4``,
read when rclpy creates the participant). Its peers keep theirs and reach it over UDP.
rmw_fastrtps ignores that variable in the LOCALHOST discovery range (it configures shared
memory itself there), so in that range hw_node can only warn.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass

TRANSPORTS_VAR = "FASTDDS_BUILTIN_TRANSPORTS"
UDP_ONLY = "UDPv4"


@dataclass(frozen=True)
class TransportChoice:
    """What hw_node did about its DDS transport, and the line its start-up log gives it."""

    udp_only: bool
    message: str
    warn: bool = False


def keep_off_shared_memory(env: MutableMapping[str, str] | None = None) -> TransportChoice:
    """Set ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4`` in ``env`` (the process environment by
    default) unless the RMW is not Fast DDS or the user chose transports; call before
    ``rclpy.init``."""
    env = os.environ if env is None else env
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and "fastrtps" not in rmw:
        return TransportChoice(
            False, f"DDS transports: {rmw}'s own (the shared-memory guard is for Fast DDS)"
        )
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST":
        return TransportChoice(
            False,
            "DDS transports: rmw_fastrtps adds shared memory in the LOCALHOST discovery range, so a "
            "subscriber killed mid-read can block this node's publishing (and its control loop) for "
            "seconds; run with ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (robot.launch.xml's default) to "
            "keep hw_node on UDP",
            warn=True,
        )
    chosen = env.get(TRANSPORTS_VAR)
    if chosen:
        udp_only = chosen == UDP_ONLY
        return TransportChoice(
            udp_only,
            f"DDS transports: {TRANSPORTS_VAR}={chosen} as set"
            + (
                "" if udp_only else f" (not {UDP_ONLY}: a killed subscriber can block publishing for seconds)"
            ),
            warn=not udp_only,
        )
    env[TRANSPORTS_VAR] = UDP_ONLY
    return TransportChoice(True, f"DDS transports: UDP only ({TRANSPORTS_VAR}={UDP_ONLY}), no shared memory")
