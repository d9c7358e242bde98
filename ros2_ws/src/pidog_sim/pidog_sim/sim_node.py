"""sim_node: the simulated PiDog on the ROS graph (DESIGN.md §2).

Steps the same PiDogSim as PiDogEnv in (scaled) real time and publishes what hw_node
publishes: /joint_states (the servo-model estimate, like the robot) and /imu/data, plus
/clock and the sim-only ground truth /sim/ground_truth/odom and /sim/ground_truth/joint_states.
Applies /joint_commands by joint name, honours /estop, resets via the /sim/reset service.

``lockstep:=true`` (with /clock): once a controller answers on sim time (/joint_commands
stamped with a /clock value), each step waits for its answer to the tick last published, up
to ``lockstep_timeout_s`` of wall-clock, instead of stepping on a busy machine with the previous
command (PX4's SITL lockstep does the same). The simulation runs slower than real time rather
than apply commands late, so what pidog-excite records for pidog-sysid is what the simulated
servos got (free-running on a loaded 2-core machine, in the worst of four runs one command in six
was applied a tick late, and three of the four fits came out wrong; docs/SYSID.md). After a timeout the simulation runs free until the
controller answers again.
"""

from __future__ import annotations

import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from pidog_description import STAND_POSE
from pidog_description.limits import clip_joint_targets
from pidog_description.messages import MessageError, imu_msg, joint_command_from_msg, joint_state_msg
from pidog_description.node_runner import refuse_start, spin_node
from pidog_description.topics import (
    BASE_FRAME_ID,
    CLOCK_TOPIC,
    CMD_VEL_TOPIC,
    ESTOP_TOPIC,
    GROUND_TRUTH_JOINT_STATES_TOPIC,
    GROUND_TRUTH_ODOM_TOPIC,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    SIM_RESET_SERVICE,
    STREAM_QOS,
    WORLD_FRAME_ID,
)

from .sim import PiDogSim

ESTOP_BEHAVIORS = ("hold", "limp")


def ground_truth_odometry(sim: PiDogSim, stamp: TimeMsg) -> Odometry:
    """The sim's privileged base pose and twist as /sim/ground_truth/odom (sim_node and the
    register-level twin, pidog_hw.emulation.twin, publish the same message)."""
    odom = Odometry()
    odom.header.stamp = stamp
    odom.header.frame_id = WORLD_FRAME_ID
    odom.child_frame_id = BASE_FRAME_ID
    x, y, z = sim.base_position()
    w, qx, qy, qz = sim.base_quaternion()
    pose = odom.pose.pose
    pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (
        float(w),
        float(qx),
        float(qy),
        float(qz),
    )
    vx, vy, vz = sim.base_linear_velocity_world()
    wx, wy, wz = sim.base_angular_velocity_body()
    twist = odom.twist.twist
    twist.linear.x, twist.linear.y, twist.linear.z = float(vx), float(vy), float(vz)
    twist.angular.x, twist.angular.y, twist.angular.z = float(wx), float(wy), float(wz)
    return odom


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_node")
        self.declare_parameter("model_path", "")
        self.declare_parameter("rate_hz", 50.0)
        self.declare_parameter("real_time_factor", 1.0)
        self.declare_parameter("randomize", False)
        self.declare_parameter("seed", 0)
        self.declare_parameter("publish_clock", True)
        self.declare_parameter("estop_behavior", "hold")
        self.declare_parameter("robot_params", "")  # a pidog-sysid parameters file; "" = defaults
        self.declare_parameter("viewer", False)
        self.declare_parameter("lockstep", False)
        self.declare_parameter("lockstep_timeout_s", 0.5)
        # "filter": /imu/data carries hw_node's orientation estimate (its complementary filter
        # over the simulated IMU) instead of the truth with white noise that training sees.
        self.declare_parameter("imu_orientation", "noisy_truth")
        p = {name: self.get_parameter(name).value for name in self._parameters}
        rate, rtf = float(p["rate_hz"]), float(p["real_time_factor"])
        if not rtf > 0:
            raise ValueError(f"parameter 'real_time_factor' must be positive, got {rtf}")
        if p["estop_behavior"] not in ESTOP_BEHAVIORS:
            raise ValueError(
                f"parameter 'estop_behavior' must be one of {ESTOP_BEHAVIORS}, got {p['estop_behavior']!r}"
            )
        substeps = self._substeps_for(rate)
        self.sim = PiDogSim(
            model_path=p["model_path"] or None,
            randomize=bool(p["randomize"]),
            config={
                "physics_substeps": substeps,
                "imu_orientation": p["imu_orientation"],
                **self._robot_params(p["robot_params"]),
            },
        )
        self.seed = int(p["seed"])
        self.estop_behavior = p["estop_behavior"]
        self.publish_clock = bool(p["publish_clock"])
        self.lockstep = bool(p["lockstep"])
        self.lockstep_timeout_s = float(p["lockstep_timeout_s"])
        if self.lockstep and not self.publish_clock:
            raise ValueError("parameter 'lockstep' needs publish_clock: the controller answers /clock ticks")
        if not self.lockstep_timeout_s > 0:
            raise ValueError(
                f"parameter 'lockstep_timeout_s' must be positive, got {self.lockstep_timeout_s}"
            )
        self.estopped = False
        self.lockstep_timeouts = 0
        # Steps taken while a controller answers on sim time, and those of them that ran
        # before its command for the tick last published had arrived (a control step late):
        # logged at shutdown, so a benchmark can say what free-running cost.
        self.controlled_steps = 0
        self.late_steps = 0
        self._reset_sim()

        self.joint_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, STREAM_QOS)
        self.imu_pub = self.create_publisher(Imu, IMU_TOPIC, STREAM_QOS)
        self.clock_pub = self.create_publisher(Clock, CLOCK_TOPIC, STREAM_QOS)
        self.odom_pub = self.create_publisher(Odometry, GROUND_TRUTH_ODOM_TOPIC, STREAM_QOS)
        self.truth_joint_pub = self.create_publisher(JointState, GROUND_TRUTH_JOINT_STATES_TOPIC, STREAM_QOS)
        self.create_subscription(JointState, JOINT_COMMANDS_TOPIC, self._on_command, STREAM_QOS)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, LATCHED_QOS)
        self.create_service(Trigger, SIM_RESET_SERVICE, self._on_reset)
        # Live viewer (issue 16): its own thread, fed without waiting; /cmd_vel only for its overlay.
        self.cmd_vel = np.zeros(2)
        self.viewer = None
        if bool(p["viewer"]):
            from .viewer import LiveViewer

            self.create_subscription(Twist, CMD_VEL_TOPIC, self._on_cmd_vel, STREAM_QOS)
            self.viewer = LiveViewer.open(
                self.sim.model,
                "sim_node",
                say=self.get_logger().warning,
                instead="the simulation runs on without a window",
            )
            if self.viewer is not None:
                self.get_logger().info(
                    "viewer open: ground-truth heading (green), /cmd_vel vx (blue), wz (orange)"
                )
        self.create_timer(self.sim.control_dt / rtf, self._tick)
        self.get_logger().info(
            f"simulating PiDog at {rate:g} Hz x{rtf:g} real time, randomize={bool(p['randomize'])}, seed={self.seed}"
            + (f", lockstep (timeout {self.lockstep_timeout_s:g} s)" if self.lockstep else "")
        )

    @staticmethod
    def _robot_params(path: str) -> dict:
        if not path:
            return {}
        from .robot_params import RobotParamsError, load_override

        try:
            return load_override(path)
        except RobotParamsError as exc:
            raise ValueError(f"parameter 'robot_params': {exc}") from None

    def _substeps_for(self, rate: float) -> int:
        timestep = 0.002  # models/pidog.xml's physics step; verified against the loaded model
        substeps = int(round(1.0 / (rate * timestep))) if rate > 0 else 0
        if substeps < 1 or abs(substeps * timestep * rate - 1.0) > 1e-6:
            raise ValueError(
                f"parameter 'rate_hz' must divide the 500 Hz physics rate (e.g. 50, 100), got {rate}"
            )
        return substeps

    def _reset_sim(self) -> None:
        # Lockstep bookkeeping, in sim-time nanoseconds (a reset restarts sim time): the last
        # /clock published, the latest command's stamp, and since when (wall-clock, s) a due
        # step has waited for its command.
        self._clock_ns = 0
        self._command_ns = 0
        self._attached = False  # a controller answers on sim time (until a timeout)
        self._waiting_since: float | None = None
        self.sim.reset(np.random.default_rng(self.seed))
        self.seed += 1
        self.target = STAND_POSE.copy()
        if self.estopped:  # a reset never releases a latched /estop: the robot stays stopped
            self._apply_estop()
        else:
            self._restore_servos()

    # --- callbacks -------------------------------------------------------------------------
    def _on_command(self, msg: JointState) -> None:
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        if 0 < stamp_ns <= self._clock_ns:  # on sim time: unstamped or wall-clock stamps never count
            self._attached = True
            self._command_ns = max(self._command_ns, stamp_ns)
        try:
            # Clipped exactly as hw_node clips (geometric joint limits, legs never touching).
            target, _ = clip_joint_targets(joint_command_from_msg(msg))
        except MessageError as exc:
            self.get_logger().warning(
                f"rejected /joint_commands: {exc}; holding last valid targets", throttle_duration_sec=2.0
            )
            return
        if not self.estopped:
            self.target = target
        if self._waiting_since is not None and not self._awaiting_command():
            self._waiting_since = None
            self._step()  # the step was due and waited for exactly this command

    def _on_cmd_vel(self, msg: Twist) -> None:
        self.cmd_vel = np.array([msg.linear.x, msg.angular.z], dtype=np.float64)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estopped:
            self.get_logger().warning(f"/estop: commands ignored, servos {self.estop_behavior}")
            self._apply_estop()
        elif not msg.data and self.estopped:
            self.get_logger().info("/estop released")
            self._restore_servos()
        self.estopped = bool(msg.data)

    def _apply_estop(self) -> None:
        self.target = self.sim.joint_estimate()
        if self.estop_behavior == "limp":
            self.sim.model.actuator_gainprm[:, 0] = 0.0
            self.sim.model.actuator_biasprm[:, 1] = 0.0

    def _restore_servos(self) -> None:
        kp = self.sim.nominal_kp
        self.sim.model.actuator_gainprm[:, 0] = kp
        self.sim.model.actuator_biasprm[:, 1] = -kp

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_sim()
        response.success = True
        response.message = f"simulation reset (seed {self.seed - 1})"
        return response

    def _awaiting_command(self) -> bool:
        """Lockstep: a controller is attached and has not yet answered the last tick."""
        return self.lockstep and self._attached and self._command_ns < self._clock_ns

    def _tick(self) -> None:
        if self._awaiting_command():
            now = time.monotonic()
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self.lockstep_timeout_s:
                return  # the command's arrival steps (_on_command)
            self.lockstep_timeouts += 1
            self._attached = False
            self.get_logger().warning(
                f"lockstep: no /joint_commands for the tick at {self._clock_ns * 1e-9:.2f} s within "
                f"{self.lockstep_timeout_s:g} s (controller stopped or too slow); stepping without it, "
                f"{self.lockstep_timeouts} time(s) so far",
                throttle_duration_sec=5.0,
            )
        self._waiting_since = None
        self._step()

    def _step(self) -> None:
        if self._attached:
            self.controlled_steps += 1
            self.late_steps += self._command_ns < self._clock_ns
        self.sim.step(self.target)
        if self.publish_clock:
            # Everything this tick publishes carries the /clock value it publishes, so a
            # use_sim_time consumer sees sensor stamps on the same time line as its own clock.
            self._clock_ns = round(self.sim.data.time * 1e9)
            stamp = Time(nanoseconds=self._clock_ns).to_msg()
        else:
            stamp = self.get_clock().now().to_msg()
        quat, gyro, accel = self.sim.imu()
        self.joint_pub.publish(joint_state_msg(stamp, self.sim.joint_estimate()))
        self.imu_pub.publish(imu_msg(stamp, quat, gyro, accel))
        self.truth_joint_pub.publish(
            joint_state_msg(
                stamp, self.sim.joint_positions(), self.sim.joint_velocities(), self.sim.joint_torques()
            )
        )
        self.odom_pub.publish(ground_truth_odometry(self.sim, stamp))
        if self.publish_clock:
            # The clock last: a controller's sim-time timer fires when /clock reaches its period,
            # and must find this tick's sensors already there. Published first, the policy read
            # the previous tick's sensors: one extra control step of latency that training
            # never saw (the shipped policy walked ~17 % slower through sim_node than through
            # the twin, whose drivers publish on wall-clock timers).
            self.clock_pub.publish(Clock(clock=stamp))
        if self.viewer is not None:
            self.viewer.submit(self.sim.batch, 0, self.cmd_vel)

    def destroy_node(self) -> None:
        if self.controlled_steps:
            self.get_logger().info(
                f"{self.late_steps} of {self.controlled_steps} steps under a sim-time controller ran "
                "before its command for the previous tick had arrived"
                + (f" ({self.lockstep_timeouts} lockstep timeouts)" if self.lockstep else "")
            )
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = SimNode()
    except (ValueError, FileNotFoundError) as exc:
        refuse_start(f"sim_node: {exc}")
    spin_node(node)


if __name__ == "__main__":
    main()
