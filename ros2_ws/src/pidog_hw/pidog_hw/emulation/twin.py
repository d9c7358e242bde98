"""The register-level digital twin: the bus emulators fed by MuJoCo. TEST/DEMO ONLY.

``hw_node`` with ``i2c_bus:=twin`` drives this bus exactly as it drives I2C bus 1 on the robot
(same driver code, same transactions). Behind the bus:

- ``TwinRobotHatMcu``: the Robot HAT MCU register model plus the 8 leg servos plugged into it.
  Each physics step it turns the channel registers into what each servo would do: timer ticks
  -> pulse width (prescaler and the 72 MHz clock) -> servo degrees (500-2500 us = -90..+90 deg)
  -> joint radians through the servo's mounting (right-side servos are mirror images). No
  pulse (or an unconfigured timer) = a limp servo. Written from the hardware facts
  (DESIGN.md §6), never by inverting the driver's functions, so a driver bug moves the
  simulated legs the way it would move the real ones.
- ``TwinSh3001``: the SH3001 register model serving the simulated IMU site's specific force and
  rate in the chip's axes (the emulator's mounting ``CHIP_FROM_BODY``: at rest the stock SDK
  reads x ~ -16384), scaled by the configured range registers, refreshed at the output data
  rate configured in its ODR registers (sim time).
- ``Twin``: one ``pidog_sim.sim.PiDogSim`` (batch of one, not randomised) stepped at the 2 ms
  physics rate in its own thread, paced by the wall clock: never faster than real time; if it
  falls behind it drops the debt (sim time slows uniformly) and reports the real-time factor.
  It publishes the sim-only ground truth (``/sim/ground_truth/odom``, ``.../joint_states``)
  stamped with sim time, for tests and benchmarks.

The world can be changed from another process through the emulator control file
(``control.py``); the twin adds wiring faults for tests that prove the twin has teeth:
``{"servo_reversed": ["lf_knee"]}`` (a servo mounted the other way round) and
``{"servo_channels": {"lf_hip": 3, "lf_knee": 2}}`` (servos plugged into the wrong channels).

The simulator is training-side software (mujoco, pidog_sim): it is imported only when a twin
is built, so this module imports on the robot and ``i2c_bus:=twin`` is refused there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np

from pidog_description.kinematics import LIE_POSE
from pidog_description.robot import JOINT_NAMES, LEG_SERVO_CHANNELS, N_JOINTS, SERVO_PULSE_US, SERVO_RANGE_DEG

from .control import ROBOT_HAT_ADDRESS, SH3001_ADDRESS
from .i2c_bus import EmulatedI2CBus
from .robot_hat_mcu import RobotHatMcu
from .sh3001 import Sh3001Emulator

# A hobby servo follows pulse trains from ~40 Hz (analog) up to a few hundred Hz (digital);
# outside that (or with no pulses) it does not hold its position: limp.
SERVO_FRAME_HZ = (40.0, 400.0)
# Right-side servos are mounted as mirror images of the left ones (DESIGN.md §6: SunFounder
# negates both right-leg servos). Derived from the side in the joint's name, not read from the
# description's sign table, so a wrong table in the driver path cannot cancel itself out here.
MOUNT_SIGN = np.array([-1.0 if name.startswith("r") else 1.0 for name in JOINT_NAMES])
HEALTHY_BATTERY_V = 7.8  # a charged 2 x 18650 pack at rest, well above any low-voltage limit
# SH3001 output data rate codes (registers 0x23 accelerometer, 0x29 gyro), SunFounder sh3001.py.
ODR_HZ = {0x00: 1000.0, 0x01: 500.0, 0x02: 250.0, 0x03: 125.0, 0x04: 63.0, 0x05: 31.0, 0x06: 16.0}
ACC_ODR_REGISTER, GYRO_ODR_REGISTER = 0x23, 0x29
SETTLE_S = 1.0  # unpowered robot dropped in the lie pose: let it come to rest before the driver looks
MAX_LAG_S = 0.01  # behind the wall clock by more than this: drop the debt instead of racing
REPORT_S = 10.0  # real-time factor log period (wall clock)
GROUND_TRUTH_EVERY = 10  # physics steps (2 ms) per ground-truth message: 50 Hz

log = logging.getLogger(__name__)


class TwinRobotHatMcu(RobotHatMcu):
    """The Robot HAT MCU with the 8 leg servos wired to its channels."""

    def __init__(self) -> None:
        super().__init__(battery_v=HEALTHY_BATTERY_V)
        self.channel_of_joint = list(LEG_SERVO_CHANNELS)  # the wiring (fault injection changes it)
        self.reversed = np.zeros(N_JOINTS, dtype=bool)  # servo mounted the other way round

    def apply_control(self, command: dict[str, Any]) -> None:
        """Wiring faults from the emulator control file (see the module docstring)."""
        if "servo_reversed" in command:
            names = list(command["servo_reversed"])
            unknown = sorted(set(names) - set(JOINT_NAMES))
            if unknown:
                raise ValueError(f"twin control 'servo_reversed': unknown joints {unknown}")
            self.reversed = np.array([name in names for name in JOINT_NAMES])
        if "servo_channels" in command:
            wiring = list(LEG_SERVO_CHANNELS)
            for name, channel in dict(command["servo_channels"]).items():
                if name not in JOINT_NAMES or not 0 <= int(channel) < 16:
                    raise ValueError(f"twin control 'servo_channels': bad entry {name!r}: {channel!r}")
                wiring[JOINT_NAMES.index(name)] = int(channel)
            self.channel_of_joint = wiring

    def servo_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(joint target rad, powered) of the 8 leg servos as the registers drive them now."""
        lo, hi = SERVO_RANGE_DEG
        p_lo, p_hi = SERVO_PULSE_US
        pulse = np.zeros(N_JOINTS)
        for joint, channel in enumerate(self.channel_of_joint):
            frame = self.frame_hz(channel // 4)
            width = self.pulse_us(channel)
            if frame is not None and SERVO_FRAME_HZ[0] <= frame <= SERVO_FRAME_HZ[1] and width:
                pulse[joint] = width
        powered = pulse > 0
        # The servo's own response: 500..2500 us spans -90..+90 deg; it stops at its end stops.
        servo_deg = lo + (np.clip(pulse, p_lo, p_hi) - p_lo) * (hi - lo) / (p_hi - p_lo)
        sign = MOUNT_SIGN * np.where(self.reversed, -1.0, 1.0)
        return np.deg2rad(servo_deg * sign), powered


class TwinSh3001(Sh3001Emulator):
    """The SH3001 register model whose samples come from the simulated IMU site."""

    def __init__(self) -> None:
        super().__init__()  # no extra noise: the simulator's IMU is the sensor
        self._force = self.specific_force_body.copy()
        self._rate = self.rate_body.copy()
        self._next_acc = self._next_gyro = 0.0

    def feed(self, sim_time: float, accel_body: np.ndarray, gyro_body: np.ndarray) -> None:
        """Offer the sim's IMU reading at ``sim_time``; each sensor takes it at its own ODR."""
        for which, register in (("acc", ACC_ODR_REGISTER), ("gyro", GYRO_ODR_REGISTER)):
            due = self._next_acc if which == "acc" else self._next_gyro
            if sim_time + 1e-9 < due:
                continue
            period = 1.0 / ODR_HZ.get(self.registers[register] & 0x0F, 1000.0)
            # On the sample grid; after a long gap (reconfiguration) restart the grid from now.
            due = due + period if sim_time - due < period else sim_time + period
            if which == "acc":
                self._force, self._next_acc = np.array(accel_body, dtype=np.float64), due
            else:
                self._rate, self._next_gyro = np.array(gyro_body, dtype=np.float64), due
        self.set_motion(self._force, self._rate)  # one reference swap: a reader never sees half


class Twin:
    """PiDogSim stepped in real time from the twin MCU's servo outputs, feeding the twin IMU."""

    def __init__(
        self,
        mcu: TwinRobotHatMcu,
        imu: TwinSh3001,
        seed: int = 0,
        model_path: str | None = None,
        ground_truth: bool = True,
    ) -> None:
        from pidog_sim.sim import PiDogSim  # training side: only a twin needs it

        self.mcu, self.imu = mcu, imu
        # One MuJoCo step per control step: the servos and the IMU are sampled every 2 ms.
        self.sim = PiDogSim(model_path=model_path, randomize=False, config={"physics_substeps": 1})
        self.dt = self.sim.control_dt
        self.sim.reset(np.random.default_rng(seed), initial_pose=LIE_POSE)
        self._kp = np.broadcast_to(np.asarray(self.sim.nominal_kp, dtype=np.float64), (N_JOINTS,)).copy()
        self._powered = np.ones(N_JOINTS, dtype=bool)
        self.steps = 0
        self.unstable_resets = 0
        self.real_time_factor = 1.0
        self.lag_drops = 0  # times it fell behind and slowed down instead of catching up
        self._node: Any = None
        self._odom_pub: Any = None
        self._joint_pub: Any = None
        if ground_truth:
            self._open_ground_truth()
        # The robot was switched on lying, unpowered: let it settle before anyone reads the IMU.
        for _ in range(round(SETTLE_S / self.dt)):
            self.step()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pidog_twin_physics", daemon=True)
        self._thread.start()

    def clock(self) -> float:
        """The simulated world's time, s: what the twin's sensors are timed by (hw_node times
        its IMU samples by it). It runs slower than the wall clock when the physics falls behind."""
        return self.steps * self.dt  # one int read: safe from any thread

    # --- ground truth ------------------------------------------------------------------------
    def _open_ground_truth(self) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import JointState

        from pidog_description.topics import (
            GROUND_TRUTH_JOINT_STATES_TOPIC,
            GROUND_TRUTH_ODOM_TOPIC,
            STREAM_QOS,
        )

        if not rclpy.ok():
            return  # no ROS in this process (unit tests): physics only
        # A node of its own: published from the physics thread, never spun, no parameters of
        # hw_node's touched.
        self._node = rclpy.create_node("pidog_twin")
        self._odom_pub = self._node.create_publisher(Odometry, GROUND_TRUTH_ODOM_TOPIC, STREAM_QOS)
        self._joint_pub = self._node.create_publisher(JointState, GROUND_TRUTH_JOINT_STATES_TOPIC, STREAM_QOS)

    def _publish_ground_truth(self) -> None:
        from rclpy.time import Time

        from pidog_description.messages import joint_state_msg
        from pidog_sim.sim_node import ground_truth_odometry

        # Sim time, as sim_node stamps it: windows measured on it do not stretch when the
        # machine is loaded and the twin runs slower than real time.
        stamp = Time(nanoseconds=round(self.sim.time * 1e9)).to_msg()
        self._odom_pub.publish(ground_truth_odometry(self.sim, stamp))
        self._joint_pub.publish(
            joint_state_msg(
                stamp, self.sim.joint_positions(), self.sim.joint_velocities(), self.sim.joint_torques()
            )
        )

    # --- physics -----------------------------------------------------------------------------
    def _set_power(self, powered: np.ndarray) -> None:
        # An unpowered servo neither holds nor drives: no actuator stiffness on that joint.
        self.sim.model.actuator_gainprm[:, 0] = np.where(powered, self._kp, 0.0)
        self.sim.model.actuator_biasprm[:, 1] = np.where(powered, -self._kp, 0.0)
        self._powered = powered

    def step(self) -> None:
        """One 2 ms physics step from the servo registers; then the IMU and the ground truth."""
        target, powered = self.mcu.servo_state()
        if (powered != self._powered).any():
            self._set_power(powered)
        if not powered.all():
            q = self.sim.joint_positions()
            target = np.where(powered, target, q)
            # A limp servo's horn turns with the leg: when its pulse returns it starts from there.
            self.sim.batch.servo_position[0, ~powered] = q[~powered]
        if self.sim.step(target):
            self.unstable_resets += 1
        _, gyro, accel = self.sim.imu()
        self.imu.feed(self.sim.time, accel, gyro)
        self.steps += 1
        if self._odom_pub is not None and self.steps % GROUND_TRUTH_EVERY == 0:
            self._publish_ground_truth()

    def _run(self) -> None:
        base_wall, base_steps = time.monotonic(), self.steps
        report_wall, report_steps = base_wall, self.steps
        while not self._stop.is_set():
            now = time.monotonic()
            due = base_wall + (self.steps - base_steps) * self.dt
            if now < due:
                self._stop.wait(due - now)
                continue
            if now - due > MAX_LAG_S:
                # Behind (a loaded machine): never race to catch up (faster than real time);
                # restart the schedule from now, so sim time runs uniformly slower instead.
                base_wall, base_steps = now, self.steps
                self.lag_drops += 1
            try:
                self.step()
            except Exception:  # a dead physics thread would freeze the robot silently
                log.exception("twin physics step failed; the twin stops")
                self._report("twin physics stopped after an error (see above)", error=True)
                return
            if now - report_wall >= REPORT_S:
                self.real_time_factor = (self.steps - report_steps) * self.dt / (now - report_wall)
                report_wall, report_steps = now, self.steps
                self._report(
                    f"twin: sim time {self.sim.time:.1f} s, real-time factor {self.real_time_factor:.3f} "
                    f"over the last {REPORT_S:g} s ({self.lag_drops} slow-downs, "
                    f"{self.unstable_resets} unstable resets)",
                    error=self.real_time_factor < 0.9,
                )

    def _report(self, text: str, error: bool = False) -> None:
        # rclpy wants one severity per call site: separate calls, not a chosen method.
        if self._node is None:
            log.log(logging.WARNING if error else logging.INFO, text)
        elif error:
            self._node.get_logger().warning(text)
        else:
            self._node.get_logger().info(text)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._node is not None:
            try:
                self._node.destroy_node()
            except Exception:  # ROS may already be shut down (hw_node closes the bus last)
                pass
            self._node = None


class TwinI2CBus(EmulatedI2CBus):
    """The emulated bus whose devices are fed by a running ``Twin``; closing it stops physics."""

    twin: Twin

    def close(self) -> None:
        twin = getattr(self, "twin", None)
        if twin is not None:
            twin.close()
        super().close()


def twin_pidog_bus(
    log_path: str | os.PathLike[str] | None = None,
    control_path: str | os.PathLike[str] | None = None,
    seed: int = 0,
    ground_truth: bool = True,
) -> TwinI2CBus:
    """I2C bus 1 of a simulated PiDog: the twin Robot HAT MCU at 0x14 and SH3001 at 0x36,
    with physics already running. Raises ImportError where the simulator is not installed."""
    bus = TwinI2CBus(log_path, control_path=control_path)
    mcu, imu = TwinRobotHatMcu(), TwinSh3001()
    bus.attach(ROBOT_HAT_ADDRESS, mcu)
    bus.attach(SH3001_ADDRESS, imu)
    try:
        bus.twin = Twin(mcu, imu, seed=seed, ground_truth=ground_truth)
    except BaseException:
        bus.close()
        raise
    return bus
