"""Does a killed subscriber stall a publisher's ``publish()``? Fast DDS's default transports
(shared memory first) against the UDP-only transport hw_node asks for (pidog_hw.dds_transport).

    python -m benchmarks.bench_dds_kill [--rounds 30] [--readers 6]

Each round starts ``--readers`` subscriber processes of a JointState topic, waits until the
publisher has matched them (10 s at most), publishes to them flat out for 1.5 s (so a reader is
often mid-read when it dies), SIGKILLs them all at once, then times every ``publish()`` for
1.5 s. A round whose longest call took over 0.2 s is a stall (hw_node publishes every 20 ms).
Each transport runs in a publisher process of its own, killed if it hangs for good, in the
SUBNET discovery range (rmw_fastrtps ignores the transport choice in LOCALHOST) with 127.0.0.1
as a static peer, on a domain of its own. Results: docs/benchmarks/dds_kill.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import machine_summary, write_result

STALL_S = 0.2
FILL_S = 1.5
MATCH_WAIT_S = 10.0
WATCH_S = 1.5
TOPIC = "/bench_dds_kill"
MODES = {"shared memory (Fast DDS default)": None, "UDP only (hw_node)": "UDPv4"}


def _reader() -> None:
    import rclpy
    from sensor_msgs.msg import JointState

    from pidog_description.topics import SENSOR_QOS

    rclpy.init()
    node = rclpy.create_node("bench_dds_kill_reader")
    node.create_subscription(JointState, TOPIC, lambda _m: None, SENSOR_QOS)
    print("ready", flush=True)
    rclpy.spin(node)


def _publisher(rounds: int, readers: int) -> None:
    """One JSON line per round on stdout; the environment picks the transports."""
    import rclpy
    from sensor_msgs.msg import JointState

    from pidog_description.robot import JOINT_NAMES
    from pidog_description.topics import STREAM_QOS

    reader_env = {k: v for k, v in os.environ.items() if k != "FASTDDS_BUILTIN_TRANSPORTS"}
    rclpy.init()
    node = rclpy.create_node("bench_dds_kill_publisher")
    pub = node.create_publisher(JointState, TOPIC, STREAM_QOS)
    msg = JointState(name=list(JOINT_NAMES), position=[0.0] * len(JOINT_NAMES))
    for index in range(rounds):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_dds_kill", "--reader"],
                env=reader_env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(readers)
        ]
        for proc in procs:  # every reader subscribed and matched before the flat-out phase
            line = proc.stdout.readline().strip() if proc.stdout is not None else ""
            if line != "ready":
                raise RuntimeError(f"a reader process did not start (it said {line!r})")
        end = time.monotonic() + MATCH_WAIT_S
        while pub.get_subscription_count() < readers and time.monotonic() < end:
            time.sleep(0.05)
        end = time.monotonic() + FILL_S
        while time.monotonic() < end:
            pub.publish(msg)
        matched = pub.get_subscription_count()
        for proc in procs:
            proc.kill()
        longest, end = 0.0, time.monotonic() + WATCH_S
        while time.monotonic() < end:
            start = time.monotonic()
            pub.publish(msg)
            longest = max(longest, time.monotonic() - start)
        for proc in procs:
            proc.wait()
        print(json.dumps({"round": index, "matched": matched, "longest_s": longest}), flush=True)


def run_mode(transports: str | None, rounds: int, readers: int, domain: int) -> dict[str, Any]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    env["ROS_STATIC_PEERS"] = "127.0.0.1"
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    if transports:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = transports
    budget = rounds * (FILL_S + WATCH_S + MATCH_WAIT_S + 6.0) + 30.0
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_dds_kill",
        "--publisher",
        str(rounds),
        "--readers",
        str(readers),
    ]
    # Its own process group: a publisher stuck in publish() holds the GIL and ignores SIGTERM.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=budget)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        hung = True
    subprocess.run(["pkill", "-KILL", "-f", "benchmarks.bench_dds_kill --reader"], check=False)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    longest = [r["longest_s"] for r in rows]
    return {
        "rounds": len(rows),
        "hung": hung,
        "stalls": sum(s > STALL_S for s in longest),
        "worst_s": max(longest, default=float("nan")),
        "median_ms": 1000 * sorted(longest)[len(longest) // 2] if longest else float("nan"),
        "matched": min((r["matched"] for r in rows), default=0),
        "matched_mean": sum(r["matched"] for r in rows) / max(len(rows), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--publisher", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader:
        _reader()
        return 0
    if args.publisher is not None:
        _publisher(args.publisher, args.readers)
        return 0
    base = 150 + os.getpid() % 60
    lines = [
        "## A killed subscriber and the publisher's `publish()` (`python -m benchmarks.bench_dds_kill`)",
        "",
        f"{args.rounds} rounds per transport: {args.readers} subscriber processes fed flat out for {FILL_S} s, "
        f"SIGKILLed at once, then every `publish()` timed for {WATCH_S} s; a stall is a call over {STALL_S} s "
        "(hw_node publishes every 20 ms). Why: pidog_hw/dds_transport.py. The publisher counts a "
        "killed reader as matched until its lease runs out, hence more matched readers than six.",
        "",
        "| publisher's transports | rounds | stalled rounds | longest call | median round's longest call | hung for good | readers matched at the kill (mean, fewest) |",
        "|---|---|---|---|---|---|---|",
    ]
    for offset, (name, transports) in enumerate(MODES.items()):
        started = time.monotonic()
        result = run_mode(transports, args.rounds, args.readers, base + offset)
        print(f"{name}: {result} ({time.monotonic() - started:.0f} s)", flush=True)
        lines.append(
            f"| {name} | {result['rounds']} | {result['stalls']} | {result['worst_s']:.2f} s | "
            f"{result['median_ms']:.1f} ms | {'yes' if result['hung'] else 'no'} | {result['matched_mean']:.1f}, {result['matched']} |"
        )
    lines += ["", f"Machine: {machine_summary()}.", ""]
    path = write_result("dds_kill", "\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
