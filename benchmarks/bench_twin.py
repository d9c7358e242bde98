"""The register-level twin in real time: hw_node (i2c_bus:=twin) + policy_node on 2 cores.

    python -m benchmarks.bench_twin [--seconds 30] [--policy FILE.onnx]

The robot's own graph on the twin (docs/TWIN.md): hw_node runs in this process with its I2C
bus behind the twin (MuJoCo stepped at 2 ms in its own thread, the SH3001 at its configured
500 Hz ODR), the servo loop at 50 Hz and the IMU read at its configured rate; policy_node
(the shipped policy or ``--policy``, onnxruntime) runs as its own process and walks forward. Everything is
pinned to 2 cores. Measured over a window after stand-up and arming:

- real-time factor: sim time advanced / wall time (physics steps x 2 ms), and how often the
  twin fell more than 10 ms behind (it then slows down instead of racing);
- hw_node's cycle cost: wall time of each control tick (servo model, 8 PWM register writes,
  /joint_states) and IMU tick (two register bursts, filter, /imu/data), and the periods the
  timers actually ran at. hw_node shares its process (and the GIL) with the twin's physics
  thread, so these are what the driver pays next to the simulation, an upper bound for the
  robot's cost;
- CPU: cores used by this process (hw_node + twin) and by policy_node.

Results: docs/benchmarks/twin.md (or in --results-dir DIR).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(30 + os.getpid() % 30))
os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    SHIPPED_POLICY,
    add_results_dir_argument,
    machine_summary,
    repo_relative,
    write_result,
)

POLICY = SHIPPED_POLICY
CORES = 2
WARMUP_S = 12.0  # wall s: twin settle, gyro calibration, stand-up, arming, slew onto the gait


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats_ms(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"{np.median(a):.2f} / {np.percentile(a, 99):.2f} / {a.max():.2f}"


def run(seconds: float, policy_path: Path = POLICY) -> dict[str, object]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_srvs.srv import SetBool

    from pidog_description.rotations import yaw_from_quaternion
    from pidog_hw.hw_node import HwNode

    cores = sorted(os.sched_getaffinity(0))[:CORES]
    os.sched_setaffinity(0, cores)  # inherited by policy_node
    # Time hw_node's two timer callbacks (patched on the class before the timers bind them).
    ticks: dict[str, list[tuple[float, float]]] = {"control": [], "imu": []}
    for name, method in (("control", "_control_tick"), ("imu", "_imu_tick")):
        original = getattr(HwNode, method)

        def timed(self, _original=original, _name=name) -> None:
            t0 = time.perf_counter()
            _original(self)
            ticks[_name].append((t0, time.perf_counter() - t0))

        setattr(HwNode, method, timed)

    logs = Path(tempfile.mkdtemp(prefix="pidog-bench-twin-"))
    rclpy.init()
    params = {
        "i2c_bus": "twin",
        "startup_pose": "stand",
        "shutdown_pose": "limp",
    }
    node = HwNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    twin = node.bus.twin
    policy = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "pidog_control.policy_node",
            "--ros-args",
            "-p",
            f"policy_path:={policy_path}",
            "-p",
            "default_vx:=0.2",
        ],
        stdout=(logs / "policy_node.log").open("w"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    track: list[tuple[float, float, float]] = []  # (x, y, yaw) while measuring

    def spin(wall_s: float, record: bool = False) -> None:
        end = time.monotonic() + wall_s
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            if record:
                x, y, _z = twin.sim.base_position()
                track.append((float(x), float(y), yaw_from_quaternion(twin.sim.base_quaternion())))

    try:
        # As an operator would: wait for the stand-up to end, let the policy run, then arm.
        start = time.monotonic()
        while node._state() != "disarmed" and time.monotonic() - start < 60:
            spin(0.1)
        spin(2.0)
        answer = node._on_arm(SetBool.Request(data=True), SetBool.Response())
        assert answer.success, answer.message
        spin(max(0.0, WARMUP_S - (time.monotonic() - start)))
        for v in ticks.values():
            v.clear()
        wall0, steps0, drops0 = time.monotonic(), twin.steps, twin.lag_drops
        cpu0, pcpu0 = time.process_time(), proc_cpu_s(policy.pid)
        x0 = twin.sim.base_position().copy()
        spin(seconds, record=True)
        wall = time.monotonic() - wall0
        sim_s = (twin.steps - steps0) * twin.dt
        result = {
            "cores": cores,
            "wall_s": wall,
            "sim_s": sim_s,
            "rtf": sim_s / wall,
            "lag_drops": twin.lag_drops - drops0,
            "unstable_resets": twin.unstable_resets,
            "hw_cpu": (time.process_time() - cpu0) / wall,
            "policy_cpu": (proc_cpu_s(policy.pid) - pcpu0) / wall,
            "walked_m": float(np.linalg.norm((twin.sim.base_position() - x0)[:2])),
            # The path, not only where it ended: a robot that veers ends nearer its start.
            "path_m": float(np.sum(np.linalg.norm(np.diff(np.array(track)[:, :2], axis=0), axis=1))),
            "turned_rad": float(np.diff(np.unwrap(np.array(track)[:, 2])).sum()),
            "height_m": float(twin.sim.base_position()[2]),
            "state": node._state(),
            "faults": "; ".join(f"{k}: {v}" for k, v in node.faults.items()),
            "policy": str(repo_relative(policy_path)),
            "control_rate_hz": node.p.rate_hz,
            "imu_rate_hz": node.p.imu_rate_hz,
        }
        for name, samples in ticks.items():
            starts = np.array([s for s, _ in samples])
            result[f"{name}_n"] = len(samples)
            result[f"{name}_cost"] = stats_ms([d for _, d in samples])
            result[f"{name}_period"] = stats_ms(list(np.diff(starts)))
            result[f"{name}_hz"] = (len(samples) - 1) / (starts[-1] - starts[0])
        return result
    finally:
        policy.send_signal(signal.SIGINT)
        try:
            policy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            policy.kill()
        node.shutdown_hardware()
        node.destroy_node()
        rclpy.try_shutdown()


def report(r: dict[str, object], seconds: float) -> str:
    load = os.getloadavg()[0]
    return "\n".join(
        [
            "## The register-level twin in real time (`python -m benchmarks.bench_twin`)",
            "",
            f"Machine: {machine_summary()}; pinned to cores {r['cores']}; load average at the end "
            f"{load:.1f} (other work on the machine slows the twin: it never runs ahead of the wall clock).",
            "",
            f"`hw_node` with `i2c_bus:=twin` (servo loop {r['control_rate_hz']:g} Hz, IMU read at "
            f"{r['imu_rate_hz']:g} Hz, SH3001 ODR 500 Hz, MuJoCo at 2 ms in hw_node's process) and "
            f"`policy_node` (`{r['policy']}`, default_vx 0.2) as its own process, "
            f"over {seconds:g} s of wall time after {WARMUP_S:g} s of start-up (stand-up, then `~/arm`).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| real-time factor (sim s / wall s) | **{r['rtf']:.3f}** ({r['sim_s']:.2f} sim s in {r['wall_s']:.2f} s) |",
            f"| slow-downs (twin > 10 ms behind) | {r['lag_drops']} |",
            f"| hw_node control tick cost, median / p99 / max | {r['control_cost']} ms |",
            f"| hw_node control tick period, median / p99 / max | {r['control_period']} ms "
            f"({r['control_hz']:.1f} Hz achieved) |",
            f"| hw_node IMU tick cost, median / p99 / max | {r['imu_cost']} ms |",
            f"| hw_node IMU tick period, median / p99 / max | {r['imu_period']} ms ({r['imu_hz']:.1f} Hz achieved) |",
            f"| CPU, hw_node + twin process | {r['hw_cpu']:.2f} cores |",
            f"| CPU, policy_node | {r['policy_cpu']:.2f} cores |",
            f"| sanity: walked (ground truth: path, from start to end), turned, end height, hw_node state "
            f"| {r['path_m']:.2f} m, {r['walked_m']:.2f} m, {r['turned_rad']:+.2f} rad, "
            f"{r['height_m']:.3f} m, {r['state']}" + (f" ({r['faults']})" if r["faults"] else "") + " |",
            "",
            "Tick costs are wall time inside the callback, in the process that also steps the physics "
            "(one GIL): the robot's hw_node, without a simulator beside it, pays less. The twin runs "
            "in real time when the factor is ~1; below 0.9 the `pidog_twin` node warns.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured wall-clock window")
    parser.add_argument(
        "--policy", type=Path, default=POLICY, help="the ONNX policy to walk (default: the shipped one)"
    )
    add_results_dir_argument(parser)
    args = parser.parse_args(argv)
    if not args.policy.is_file():
        parser.error(f"--policy {args.policy}: no such file")
    r = run(args.seconds, args.policy.resolve())
    text = report(r, args.seconds)
    print(text)
    print(f"written to {write_result('twin', text, args.results_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
