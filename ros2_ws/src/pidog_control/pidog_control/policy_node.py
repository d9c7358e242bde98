"""policy_node: run ``policy.onnx`` at 50 Hz behind the safety layer (DESIGN.md §2, §4).

    python -m pidog_control.policy_node --ros-args -p policy_path:=/path/policy.onnx

Subscribes /joint_states, /imu/data, /cmd_vel, /estop (latched) and, with
``follow_learning:=true``, /learning/policy (latched: absolute path of each newly exported
policy, hot-reloaded). Publishes /joint_commands, its safety state on ~/state (latched String)
and loop statistics on /diagnostics. Robot side: imports numpy, onnxruntime and rclpy only.
A NaN /cmd_vel means stop; no /cmd_vel for cmd_timeout_s means stand (command 0, 0). The
policy treads in place at (0, 0), as trained; with ``stand_after_s`` > 0 a zero command held
that long stands the robot still (safety state ``standing``) until the next non-zero command.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool, String

from pidog_description.loop_timing import LoopMonitor
from pidog_description.messages import MessageError, imu_from_msg, joint_positions_from_msg, joint_state_msg
from pidog_description.node_runner import refuse_start, spin_node
from pidog_description.spec import CMD_TIMEOUT_S, COMMAND_LIMITS, CONTROL_HZ, action_to_target
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    DIAGNOSTICS_TOPIC,
    ESTOP_TOPIC,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    LEARNING_POLICY_TOPIC,
    NODE_STATE_TOPIC,
    SENSOR_QOS,
    STREAM_QOS,
)

from .policy_runtime import ObservationBuilder, OnnxPolicy, PolicyLoadError
from .safety import SafetyConfig, SafetyConfigError, SafetyLayer, SafetyState, SensorTimes

WARN_EVERY_S = 2.0
IDLE_DEADBAND = (0.005, 0.01)  # m/s, rad/s: a command this small counts as zero for stand_after_s
STATS_WINDOW = 500  # ticks (10 s at 50 Hz) behind the diagnostics percentiles


class ParameterError(ValueError):
    """An invalid node parameter; the message names it."""


@dataclass(frozen=True)
class PolicyNodeParams:
    policy_path: str
    follow_learning: bool
    rate_hz: float
    default_vx: float
    soft_start_s: float
    sensor_timeout_s: float
    max_tilt_rad: float
    fall_recovery_s: float
    diagnostics_period_s: float
    cmd_timeout_s: float
    stand_after_s: float


NUMBER_DEFAULTS: dict[str, float] = {
    "rate_hz": CONTROL_HZ,
    # Nothing moves without an operator: 0 until a /cmd_vel (or an explicit default_vx) says so.
    "default_vx": 0.0,
    "soft_start_s": 1.0,
    "sensor_timeout_s": 0.25,
    "max_tilt_rad": 0.8,
    "fall_recovery_s": 2.0,
    "diagnostics_period_s": 1.0,
    # Once an operator has sent /cmd_vel, silence for this long means "stop" (as the teleop gait
    # node and the bag importer read it); before any /cmd_vel the default command applies.
    "cmd_timeout_s": CMD_TIMEOUT_S,
    # 0: the policy runs at a zero command too (as in training and evaluation); robot.launch.xml
    # sets 1 s so an idle robot stands still instead of treading in place.
    "stand_after_s": 0.0,
}


def declare_parameters(node: Node) -> PolicyNodeParams:
    """Declare every parameter with a working default; refuse invalid values by name."""
    try:
        policy_path: str = node.declare_parameter("policy_path", "").value
        follow: bool = node.declare_parameter("follow_learning", False).value
    except (InvalidParameterTypeException, ParameterException) as exc:
        raise ParameterError(str(exc)) from exc
    # Numbers are dynamically typed so `rate_hz:=50` (an integer in YAML) works as well as 50.0.
    numbers = {name: _number(node, name, default) for name, default in NUMBER_DEFAULTS.items()}
    params = PolicyNodeParams(policy_path=str(policy_path), follow_learning=bool(follow), **numbers)
    if not (0 < params.rate_hz <= 1000):
        raise ParameterError(f"parameter 'rate_hz' must be within (0, 1000] Hz, got {params.rate_hz}")
    lo, hi = COMMAND_LIMITS["vx"]
    if not lo <= params.default_vx <= hi:
        raise ParameterError(
            f"parameter 'default_vx' must be within [{lo}, {hi}] m/s, got {params.default_vx}"
        )
    if not params.cmd_timeout_s > 0:
        raise ParameterError(f"parameter 'cmd_timeout_s' must be positive, got {params.cmd_timeout_s}")
    if not (0.1 <= params.diagnostics_period_s <= 60):
        raise ParameterError(
            f"parameter 'diagnostics_period_s' must be within [0.1, 60] s, got {params.diagnostics_period_s}"
        )
    if not params.policy_path and not params.follow_learning:
        raise ParameterError(
            "parameter 'policy_path' is empty and 'follow_learning' is false: nothing to run"
        )
    return params


def _number(node: Node, name: str, default: float) -> float:
    value: object = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParameterError(f"parameter '{name}' must be a finite number, got {value!r}")
    return float(value)


class LoopStats:
    """Timer periods, compute times and sensor ages over the last STATS_WINDOW ticks (ms)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.periods: deque[float] = deque(maxlen=STATS_WINDOW)
        self.compute: deque[float] = deque(maxlen=STATS_WINDOW)
        self.sensor_age: deque[float] = deque(maxlen=STATS_WINDOW)
        self.ticks = 0
        self.overruns = 0
        self._last_start: float | None = None

    def tick_started(self, now: float) -> None:
        if self._last_start is not None:
            self.periods.append(now - self._last_start)
        self._last_start = now
        self.ticks += 1

    def tick_done(self, compute_s: float, late: bool) -> bool:
        """Record a tick; True when it overran (took longer than a period or started late)."""
        self.compute.append(compute_s)
        overrun = compute_s > self.period_s or late
        self.overruns += int(overrun)
        return overrun

    def summary(self) -> dict[str, float]:
        def pct(values: deque[float], q: float, offset: float = 0.0) -> float:
            if not values:
                return float("nan")
            return float(np.percentile(np.abs(np.asarray(values) - offset), q) * 1e3)

        return {
            "period_mean_ms": float(np.mean(self.periods) * 1e3) if self.periods else float("nan"),
            "period_jitter_p50_ms": pct(self.periods, 50, self.period_s),
            "period_jitter_p99_ms": pct(self.periods, 99, self.period_s),
            "compute_p50_ms": pct(self.compute, 50),
            "compute_p99_ms": pct(self.compute, 99),
            "sensor_age_p50_ms": pct(self.sensor_age, 50),
            "sensor_age_p99_ms": pct(self.sensor_age, 99),
        }


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        self.params = declare_parameters(self)
        self.dt = 1.0 / self.params.rate_hz
        self.safety = SafetyLayer(
            SafetyConfig(
                dt=self.dt,
                soft_start_s=self.params.soft_start_s,
                sensor_timeout_s=self.params.sensor_timeout_s,
                max_tilt_rad=self.params.max_tilt_rad,
                fall_recovery_s=self.params.fall_recovery_s,
                stand_after_s=self.params.stand_after_s,
            )
        )
        self.policy: OnnxPolicy | None = (
            OnnxPolicy(self.params.policy_path) if self.params.policy_path else None
        )
        self._pending_policy: OnnxPolicy | None = None
        self._announcements = 0
        self._newest_loaded = 0
        self._reload_lock = threading.Lock()
        self.obs = ObservationBuilder(
            default_command=(self.params.default_vx, 0.0),
            history=self.policy.layout.history if self.policy is not None else 0,
            action_filter_hz=self.policy.action_filter_hz if self.policy is not None else 0.0,
        )
        self._last_cmd_vel: float | None = None  # monotonic time of the last /cmd_vel
        self.times = SensorTimes()
        self.estop = False
        self.counts = {
            "rejected_joint_states": 0,
            "rejected_imu": 0,
            "bad_actions": 0,
            "reloads": 0,
            "failed_reloads": 0,
        }
        self.stats = LoopStats(self.dt)
        self._last_warning: dict[tuple[str, str], float] = {}
        self._use_sim_time = bool(self.get_parameter("use_sim_time").value)
        # A tick that starts 1.5 periods after the last is late; the monitor says how the
        # thread spent the gap (short of CPU, running, blocked). On sim time a slowed
        # simulation, not the loop, sets the pace, so lateness is not judged there.
        self.loop = LoopMonitor(stall_after_s=1.5 * self.dt)
        if self.params.rate_hz != CONTROL_HZ:
            self.get_logger().warning(
                f"rate_hz={self.params.rate_hz:g} but policies are trained at {CONTROL_HZ:g} Hz: expect a different gait"
            )

        self.cmd_pub = self.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
        self.state_pub = self.create_publisher(String, NODE_STATE_TOPIC, LATCHED_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STREAM_QOS)
        # Best effort subscriptions match reliable and best-effort sensor publishers alike.
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joint_state, SENSOR_QOS)
        self.create_subscription(Imu, IMU_TOPIC, self._on_imu, SENSOR_QOS)
        self.create_subscription(Twist, CMD_VEL_TOPIC, self._on_cmd_vel, STREAM_QOS)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, LATCHED_QOS)
        if self.params.follow_learning:
            self.create_subscription(String, LEARNING_POLICY_TOPIC, self._on_policy_announced, LATCHED_QOS)

        # The control timer follows ROS time (sim time under use_sim_time); the watchdog and the
        # diagnostics follow the wall clock, so a stopped simulator is still noticed.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.dt, self._tick)
        self.create_timer(min(0.1, self.params.sensor_timeout_s / 2), self._supervise, clock=steady)
        self.create_timer(self.params.diagnostics_period_s, self._publish_diagnostics, clock=steady)
        self._publish_state()
        source = self.params.policy_path or "the next policy on /learning/policy"
        self.get_logger().info(
            f"running {source} at {self.params.rate_hz:g} Hz; default command vx={self.params.default_vx:g} m/s"
            + ("; following /learning/policy" if self.params.follow_learning else "")
        )

    # --- inputs ------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        self._accept(msg, "rejected_joint_states", JOINT_STATES_TOPIC, self._take_joint_state)

    def _take_joint_state(self, msg: JointState) -> None:
        self.obs.set_joints(joint_positions_from_msg(msg))
        self.times.joints = time.monotonic()

    def _on_imu(self, msg: Imu) -> None:
        self._accept(msg, "rejected_imu", IMU_TOPIC, self._take_imu)

    def _take_imu(self, msg: Imu) -> None:
        orientation, gyro, _accel = imu_from_msg(msg)
        self.obs.set_imu(orientation, gyro)
        self.times.imu = time.monotonic()

    def _accept(self, msg, counter: str, topic: str, take: Callable) -> None:
        try:
            take(msg)
        except MessageError as exc:
            # Not stored and not timestamped: if only bad messages come, the watchdog trips.
            self.counts[counter] += 1
            self._warn_throttled(
                (topic, str(exc)[:24]), f"ignored {topic} ({self.counts[counter]} so far): {exc}"
            )

    def _warn_throttled(self, key: tuple[str, str], text: str) -> None:
        """At most one warning per WARN_EVERY_S for each (topic, kind of problem).

        rclpy throttles per call site, which would let one topic's warnings hide another's.
        """
        now = time.monotonic()
        if now - self._last_warning.get(key, -math.inf) >= WARN_EVERY_S:
            self._last_warning[key] = now
            self.get_logger().warning(text)

    def _on_cmd_vel(self, msg: Twist) -> None:
        vx, wz = float(msg.linear.x), float(msg.angular.z)
        self._last_cmd_vel = time.monotonic()
        if not (math.isfinite(vx) and math.isfinite(wz)):
            # A broken teleop sends NaN: stop altogether rather than keep turning on the other axis.
            self.obs.set_command(0.0, 0.0)
            self._warn_throttled(
                (CMD_VEL_TOPIC, "non-finite"), f"{CMD_VEL_TOPIC} is not finite (vx={vx}, wz={wz}): stopping"
            )
            return
        self.obs.set_command(vx, wz)
        if not np.allclose(self.obs.command, [vx, wz]):
            self.get_logger().warning(
                f"{CMD_VEL_TOPIC} (vx={vx:g} m/s, wz={wz:g} rad/s) clipped to {self.obs.command.tolist()} "
                f"(limits {COMMAND_LIMITS})",
                throttle_duration_sec=WARN_EVERY_S,
            )

    def _on_estop(self, msg: Bool) -> None:
        # rclpy ties a severity to each call site, hence one call per severity.
        if msg.data and not self.estop:
            self.get_logger().warning(f"{ESTOP_TOPIC} engaged: no more joint commands")
        elif not msg.data and self.estop:
            self.get_logger().info(f"{ESTOP_TOPIC} released")
        self.estop = bool(msg.data)
        self._tick_state_only()

    def _on_policy_announced(self, msg: String) -> None:
        # Loading takes tens of ms: do it off the control thread, swap on the next tick. Each
        # announcement gets a number so a slow older load can never replace a newer policy.
        self._announcements += 1
        threading.Thread(target=self._load_policy, args=(msg.data, self._announcements), daemon=True).start()

    def _load_policy(self, path: str, number: int) -> None:
        try:
            policy = OnnxPolicy(path)
        except PolicyLoadError as exc:
            self.counts["failed_reloads"] += 1
            current = self.policy.path if self.policy else "none"
            self.get_logger().warning(f"not switching policy (keeping {current}): {exc}")
            return
        with self._reload_lock:
            if number < self._newest_loaded:
                self.get_logger().info(f"skipping {path}: a newer announced policy is already loaded")
                return
            self._newest_loaded = number
            self._pending_policy = policy
        self.get_logger().info(f"loaded new policy {path}")

    # --- control -----------------------------------------------------------------------------
    def _tick(self) -> None:
        start = time.perf_counter()
        self.stats.tick_started(start)
        stall = None if self._use_sim_time else self.loop.tick(time.monotonic())
        if (
            self._last_cmd_vel is not None
            and time.monotonic() - self._last_cmd_vel > self.params.cmd_timeout_s
        ):
            self._last_cmd_vel = None
            self.obs.set_command(0.0, 0.0)
            self.get_logger().info(
                f"no {CMD_VEL_TOPIC} for {self.params.cmd_timeout_s:g} s: commanding a stop"
            )
        if self._pending_policy is not None:
            self.policy, self._pending_policy = self._pending_policy, None
            self.obs.set_history(self.policy.layout.history)  # a new policy may read another layout
            self.obs.set_action_filter(self.policy.action_filter_hz)  # and act behind another filter
            self.counts["reloads"] += 1
        previous = self.safety.state
        state = self.safety.update(
            time.monotonic(),
            self.times,
            self.obs.joint_pos,
            self.obs.gravity,
            self.estop,
            self.policy is not None,
            command_is_zero=self._command_is_zero(),
        )
        if state != previous:
            self._publish_state()
            if state == SafetyState.RUNNING:
                self.obs.restart_clock()  # every policy run starts like an episode
        target = self._policy_target() if state == SafetyState.RUNNING else None
        command = self.safety.command(target)
        if command is not None:
            self.cmd_pub.publish(joint_state_msg(self.get_clock().now().to_msg(), command))
            if self.times.joints is not None:
                self.stats.sensor_age.append(time.monotonic() - self.times.joints)
        compute = time.perf_counter() - start
        if self.stats.tick_done(compute, late=stall is not None):
            self.get_logger().warning(
                f"control loop overrun: tick took {compute * 1e3:.1f} ms"
                + (f", started late, {stall.describe()}" if stall is not None else "")
                + f" (period {self.dt * 1e3:.1f} ms; {self.stats.overruns} overruns so far)",
                throttle_duration_sec=WARN_EVERY_S,
            )

    def _policy_target(self) -> np.ndarray | None:
        """Run the policy; a non-finite or failed output yields None (the safety layer holds)."""
        obs = self.obs.observation()
        error: str | None
        try:
            # RUNNING: update() was told there is a policy; inside the try, so even a broken
            # promise only holds the robot, as any other failure of the policy does.
            assert self.policy is not None
            action = self.policy.act(obs)
        except Exception as exc:  # a runtime failure must not kill the control loop
            error = f"policy failed: {exc}"  # returns below before any use of action
        else:
            error = None if np.all(np.isfinite(action)) else f"policy output is not finite: {action.tolist()}"
        if error is not None:
            self.counts["bad_actions"] += 1
            self.get_logger().warning(f"{error}; holding the pose", throttle_duration_sec=WARN_EVERY_S)
            self.obs.advance(self.obs.last_action, self.dt)
            return None
        return action_to_target(self.obs.advance(action, self.dt))  # through the policy's action filter

    def _command_is_zero(self) -> bool:
        """(0, 0) within IDLE_DEADBAND: a joystick at rest may send a few 1e-4 instead of 0."""
        return bool(np.all(np.abs(self.obs.command) < IDLE_DEADBAND))

    def _tick_state_only(self) -> None:
        """React to /estop at once instead of on the next tick."""
        if self.estop and self.safety.state != SafetyState.ESTOP:
            self.safety.update(
                time.monotonic(),
                self.times,
                self.obs.joint_pos,
                self.obs.gravity,
                True,
                False,
                self._command_is_zero(),
            )
            self._publish_state()

    def _supervise(self) -> None:
        previous = self.safety.state
        if self.safety.stale_check(time.monotonic(), self.times) != previous:
            self._publish_state()

    # --- outputs -----------------------------------------------------------------------------
    def _publish_state(self) -> None:
        state = self.safety.state
        self.state_pub.publish(String(data=state.value))
        text = f"state {state.value}: {self.safety.reason}"
        if state in (SafetyState.SOFT_START, SafetyState.RUNNING, SafetyState.STANDING):
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        stats = self.stats.summary()
        state = self.safety.state
        if state in (SafetyState.STALE, SafetyState.FALLEN):
            level = DiagnosticStatus.ERROR
        elif state in (SafetyState.ESTOP, SafetyState.WAITING, SafetyState.NO_POLICY) or self.stats.overruns:
            level = DiagnosticStatus.WARN
        else:
            level = DiagnosticStatus.OK
        values = {
            "state": state.value,
            "reason": self.safety.reason,
            "policy": self.policy.path if self.policy else "",
            "rate_hz": f"{self.params.rate_hz:g}",
            "ticks": str(self.stats.ticks),
            "overruns": str(self.stats.overruns),
            **{k: f"{v:.3f}" for k, v in stats.items()},
            **{k: str(v) for k, v in self.counts.items()},
            **{k: str(v) for k, v in self.loop.status().items()},
        }
        status = DiagnosticStatus(
            level=level,
            name="policy_node: control loop",
            hardware_id="pidog",
            message=f"{state.value}: {self.safety.reason}",
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)
        self.get_logger().info(
            f"{state.value}: {self.stats.ticks} ticks, {self.stats.overruns} overruns, "
            f"period jitter p99 {stats['period_jitter_p99_ms']:.2f} ms, compute p99 {stats['compute_p99_ms']:.2f} ms",
            throttle_duration_sec=10.0,
        )


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = PolicyNode()
    except (ParameterError, SafetyConfigError, PolicyLoadError) as exc:
        refuse_start(f"policy_node: error: {exc}")
    spin_node(node)


if __name__ == "__main__":
    main()
