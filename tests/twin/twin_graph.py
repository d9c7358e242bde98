"""Test-side graph for the twin tests: the shipped policy driven over DDS through sim_node, or
through hw_node on the register-level twin (``i2c_bus:=twin``), judged by ground-truth odometry
on sim time. The test is the operator: it arms hw_node and sends /cmd_vel."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist, Vector3
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu
from std_msgs.msg import String
from std_srvs.srv import SetBool

from pidog_description.rotations import tilt_from_quaternion
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    GROUND_TRUTH_ODOM_TOPIC,
    HW_ARM_SERVICE_NAME,
    HW_STATE_TOPIC_NAME,
    IMU_TOPIC,
    LATCHED_QOS,
    SENSOR_QOS,
    STREAM_QOS,
)

# The deploy tests' recorders (policy state) and ground-truth odometry sampler: one copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_graph import record  # noqa: E402
from test_shipped_policy import SHIPPED_POLICY, Odom, odometry_window  # noqa: E402

FORWARD = (0.2, 0.0)  # (vx m/s, wz rad/s) as test_shipped_policy drives it
LEFT = (0.05, 1.0)
POLICY_PARAMS = {"policy_path": str(SHIPPED_POLICY), "default_vx": 0.0}  # as robot.launch.xml
FALL_TILT_RAD = 0.8  # the body's up axis this far from vertical: fallen
FALL_MARGIN_S = 0.3  # rates this close before the fall belong to it, not to the walk
TWIN_HW_PARAMS: dict[str, Any] = {
    "i2c_bus": "twin",
    "startup_pose": "stand",  # the real start-up: lying unpowered, servos on one by one, rise
    "shutdown_pose": "limp",  # nobody watches the lie-down after a test
}


@dataclass
class Run:
    """What one graph did: forward progress along its heading (m) and yaw change (rad) over the
    windows, and whether the robot ended up fallen (ground truth), with hw_node's state."""

    forward_m: float  # walked_distance over the forward window
    yaw_rad: float | None  # yaw change over the turn window
    fell: bool
    note: str = ""
    # Correlation of /imu/data's roll and pitch rates with the ground truth's from arming to the
    # end of the forward window or a fall (hw_node runs only): +1 = the driver's IMU tells the truth.
    gyro_corr: tuple[float, float] | None = None

    def __str__(self) -> str:
        yaw = "n/a" if self.yaw_rad is None else f"{self.yaw_rad:+.3f} rad"
        corr = (
            ""
            if self.gyro_corr is None
            else f", IMU roll/pitch rate vs truth r={self.gyro_corr[0]:+.2f}/{self.gyro_corr[1]:+.2f}"
        )
        return f"forward {self.forward_m:+.3f} m, yaw {yaw}, fell={self.fell}{corr} {self.note}".strip()


def window_note(w: np.ndarray) -> str:
    """The forward window's heading change and its net progress along the starting heading."""
    progress = np.cos(w[0, 3]) * (w[-1, 1] - w[0, 1]) + np.sin(w[0, 3]) * (w[-1, 2] - w[0, 2])
    quarters = " ".join(f"{walked_distance(q):.2f}" for q in np.array_split(w, 4))
    return (
        f"(forward window: yaw {w[-1, 3] - w[0, 3]:+.2f} rad, net progress {progress:+.3f} m, "
        f"walked by quarter {quarters} m)"
    )


def walked_distance(w: np.ndarray) -> float:
    """Distance walked along the body's heading at each instant (m), summed over the window:
    an odometer, so a gait that veers still counts what it walked, and sway does not."""
    heading = 0.5 * (w[1:, 3] + w[:-1, 3])
    return float((np.cos(heading) * np.diff(w[:, 1]) + np.sin(heading) * np.diff(w[:, 2])).sum())


class Operator:
    """Sends /cmd_vel at 20 Hz and measures the ground truth over sim-time windows."""

    def __init__(self, probe, logs) -> None:
        self.probe = probe
        self.logs = logs
        self.odom = Odom(probe)
        self.tilt: list[tuple[float, float]] = []  # (sim time, tilt of the body's up axis, rad)
        # (arrival time, wx, wy) of /imu/data and of the ground truth: the two run on different
        # clocks (wall and sim), so they are paired by when they arrive here.
        self.imu_rates: list[tuple[float, float, float]] = []
        self.true_rates: list[tuple[float, float, float]] = []
        self.fell_at: float | None = None  # arrival time of the first ground truth past FALL_TILT_RAD
        self._subs = [
            probe.node.create_subscription(Imu, IMU_TOPIC, self._on_imu, SENSOR_QOS),
            probe.node.create_subscription(Odometry, GROUND_TRUTH_ODOM_TOPIC, self._on_tilt, STREAM_QOS),
            self.odom.subscription,
        ]
        self.twist_pub = probe.node.create_publisher(Twist, CMD_VEL_TOPIC, STREAM_QOS)
        self.command: tuple[float, float] | None = None
        self._timer = probe.node.create_timer(0.05, self._send)

    def close(self) -> None:
        """Stop sending /cmd_vel and listening. An operator left running would keep steering
        the next graph in the same test: the sim_node reference's last command (turn left at
        1 rad/s) interleaved with the twin run's 'forward' made the twin walk in circles."""
        self.command = None
        self.probe.node.destroy_timer(self._timer)
        self.probe.node.destroy_publisher(self.twist_pub)
        for sub in self._subs:
            self.probe.node.destroy_subscription(sub)

    def _on_imu(self, msg: Imu) -> None:
        self.imu_rates.append((time.monotonic(), msg.angular_velocity.x, msg.angular_velocity.y))

    def gyro_correlation(self, since: float) -> tuple[float, float] | None:
        """Correlation of /imu/data's x and y rates with the ground truth's since ``since``, up
        to a fall if the robot fell: the two are paired by arrival time, and a fall's fast rates
        arriving a little apart on a loaded machine would weigh more than the whole walk.
        None if there is under a second of both to compare (a robot that fell at once)."""
        until = math.inf if self.fell_at is None else self.fell_at - FALL_MARGIN_S
        imu = np.array([r for r in self.imu_rates if since <= r[0] < until])
        truth = np.array([r for r in self.true_rates if since <= r[0] < until])
        if len(imu) <= 50 or len(truth) <= 50:
            return None
        return tuple(
            float(np.corrcoef(imu[:, axis], np.interp(imu[:, 0], truth[:, 0], truth[:, axis]))[0, 1])
            for axis in (1, 2)
        )

    def _on_tilt(self, msg) -> None:
        w = msg.twist.twist.angular
        self.true_rates.append((time.monotonic(), w.x, w.y))
        q = msg.pose.pose.orientation
        tilt = tilt_from_quaternion(np.array([q.w, q.x, q.y, q.z]))
        self.tilt.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, tilt))
        if tilt > FALL_TILT_RAD and self.fell_at is None:
            self.fell_at = time.monotonic()

    def _send(self) -> None:
        if self.command is not None:
            vx, wz = self.command
            self.twist_pub.publish(Twist(linear=Vector3(x=vx), angular=Vector3(z=wz)))

    def drive(self, cmd: tuple[float, float] | None, seconds: float, settle: float = 1.0) -> np.ndarray:
        """Send ``cmd`` for ``settle`` + ``seconds`` of sim time; the odometry after settling."""
        assert self.probe.spin_until(lambda: self.twist_pub.get_subscription_count() > 0, 10), self.logs()
        self.command = cmd
        return odometry_window(self.probe, self.odom, seconds, settle, self.logs)

    def fell_since(self, t0: float, limit: float = FALL_TILT_RAD) -> bool:
        return any(tilt > limit for t, tilt in self.tilt if t >= t0)


def run_sim_node(spawn_node, probe, seconds: float, turn_seconds: float = 0.0) -> Run:
    """The reference: the shipped policy through sim_node (use_sim_time), forward for ``seconds``,
    then left for ``turn_seconds`` if given. In lockstep: each step waits for the policy's answer
    to the tick before, as in training, so the reference does not depend on the machine's load.
    Its orientation comes from hw_node's complementary filter, as on the twin: a policy's turn
    can differ between the filter's estimate and the true orientation it was trained on (by
    6-13 % for the policy shipped since 2026-12-03, 21 % for another run; docs/ABLATIONS.md,
    eleventh session), which the comparison is not about."""
    rec = record(probe)
    sim = spawn_node(
        "pidog_sim.sim_node", {"randomize": False, "seed": 0, "imu_orientation": "filter", "lockstep": True}
    )
    policy = spawn_node("pidog_control.policy_node", {**POLICY_PARAMS, "use_sim_time": True})
    logs = lambda: f"--- sim_node\n{sim.log()}\n--- policy_node\n{policy.log()}"  # noqa: E731
    op = Operator(probe, logs)
    try:
        assert probe.spin_until(lambda: rec.state == "running", 60), logs()
        t0 = op.odom.now
        forward = op.drive(FORWARD, seconds)
        yaw = None
        if turn_seconds:
            left = op.drive(LEFT, turn_seconds)
            yaw = float(left[-1, 3] - left[0, 3])
        run = Run(walked_distance(forward), yaw, op.fell_since(t0), window_note(forward))
    finally:
        op.close()
    sim.stop()
    policy.stop()
    return run


def run_twin(
    spawn_node,
    probe,
    tmp_path: Path,
    seconds: float,
    turn_seconds: float = 0.0,
    hw_params: dict[str, Any] | None = None,
    control: dict[str, Any] | None = None,
) -> Run:
    """The shipped policy through hw_node on the twin: hw_node stands the robot up, policy_node
    starts, the operator arms hw_node and drives (forward, then left if ``turn_seconds``).
    ``control``: twin faults written to the emulator control file before hw_node starts
    (pidog_hw.emulation.twin)."""
    params = {**TWIN_HW_PARAMS, **(hw_params or {})}
    if control:
        path = tmp_path / "twin_control.json"
        path.write_text(json.dumps({"seq": 1, **control}))
        params["emulator_control"] = str(path)
    states: list[str] = []
    probe.node.create_subscription(String, HW_STATE_TOPIC_NAME, lambda m: states.append(m.data), LATCHED_QOS)
    hw = spawn_node("pidog_hw.hw_node", params)
    logs = lambda: f"--- hw_node\n{hw.log()}"  # noqa: E731
    op = Operator(probe, logs)
    try:
        # Stand-up done, or a fault latched at start (a twin that shows the mistake before arming).
        assert probe.spin_until(lambda: states and states[-1] != "moving_to_pose", 60), logs()
        rec = record(probe)
        policy = spawn_node("pidog_control.policy_node", POLICY_PARAMS)
        logs = lambda: f"--- hw_node\n{hw.log()}\n--- policy_node\n{policy.log()}"  # noqa: E731
        op.logs = logs
        assert probe.spin_until(lambda: rec.state is not None and rec.state != "waiting_for_sensors", 60), (
            logs()
        )
        if states[-1] == "disarmed":  # a robot that stands: the policy runs before it is armed
            assert probe.spin_until(lambda: rec.state == "running", 30), logs()
        client = probe.node.create_client(SetBool, HW_ARM_SERVICE_NAME)
        assert client.wait_for_service(timeout_sec=10), logs()
        future = client.call_async(SetBool.Request(data=True))
        assert probe.spin_until(future.done, 10), logs()
        armed = future.result()
        armed_at = time.monotonic()
        t0 = op.odom.now
        forward = op.drive(FORWARD, seconds)
        # From arming on (up to a fall, if any): a fault that topples the robot within its first
        # second of walking still leaves its settling and first steps to compare.
        gyro_corr = op.gyro_correlation(since=armed_at)
        yaw = None
        if turn_seconds:
            left = op.drive(LEFT, turn_seconds)
            yaw = float(left[-1, 3] - left[0, 3])
        note = f"{window_note(forward)} arm: {armed.message}; hw_node state {states[-1] if states else '?'}"
        note += "".join(f"\n  hw_node: {line}" for line in hw.log().splitlines() if "latched until" in line)
        run = Run(walked_distance(forward), yaw, op.fell_since(t0), note, gyro_corr)
    finally:
        op.close()
    policy.stop()
    hw.stop()
    return run
