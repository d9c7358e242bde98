"""The PiDog simulation core shared by PiDogEnv (training) and sim_node (ROS).

One control step = rate-limited servo targets (the same ServoModel the hardware node uses for
its joint estimate), optional control latency, then ``physics_substeps`` MuJoCo steps.
Sensor readings carry the randomised IMU noise and bias.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import mujoco
import numpy as np

from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.robot import SERVO_MAX_SPEED
from pidog_description.rotations import quat_from_rotvec, quat_multiply, yaw_from_quaternion
from pidog_description.servo import ServoModel
from pidog_description.spec import gravity_from_quaternion, roll_pitch_from_gravity

from .config import merge_config
from .model import load_model

_FALL_GEOMS = ("torso", "battery", "head")


class PiDogSim:
    def __init__(
        self, model_path: str | None = None, randomize: bool = True, config: dict[str, Any] | None = None
    ):
        self.config = merge_config(config)
        self.randomize = randomize
        self.model = load_model(model_path)
        self.data = mujoco.MjData(self.model)
        m = self.model
        substeps = self.config["physics_substeps"]
        if not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"physics_substeps must be a positive integer, got {substeps!r}")
        self.control_dt = m.opt.timestep * substeps
        joint_ids = [m.joint(name).id for name in JOINT_NAMES]
        self.qpos_idx = np.array([m.jnt_qposadr[j] for j in joint_ids])
        self.dof_idx = np.array([m.jnt_dofadr[j] for j in joint_ids])
        self.base_id = m.body("base_link").id
        self._torso_geom = m.geom("torso").id
        self._fall_geoms = {m.geom(name).id for name in _FALL_GEOMS}
        self._floor = m.geom("floor").id
        self._quat_adr = m.sensor_adr[m.sensor("imu_quat").id]
        self._gyro_adr = m.sensor_adr[m.sensor("imu_gyro").id]
        self._accel_adr = m.sensor_adr[m.sensor("imu_accel").id]
        # Nominal values that randomisation scales from.
        self._nominal_mass = m.body_mass.copy()
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_friction = m.geom_friction.copy()
        self._nominal_forcerange = m.actuator_forcerange.copy()
        self.nominal_kp = m.actuator_gainprm[:, 0].copy()
        self._stand_height = float(m.body_pos[self.base_id][2])
        self.servo = ServoModel(STAND_POSE)
        self.rng = np.random.default_rng()
        self._latency: deque[np.ndarray] = deque()
        self.gyro_bias = np.zeros(3)
        self.noise = {"gyro": 0.0, "gravity": 0.0}
        self._next_push = np.inf
        self._push_end = -np.inf
        self.reset(self.rng)

    # --- episode ---------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, initial_pose: np.ndarray | None = None) -> None:
        m, d = self.model, self.data
        self.rng = rng
        mujoco.mj_resetData(m, d)
        pose = STAND_POSE if initial_pose is None else np.asarray(initial_pose, dtype=np.float64)
        d.qpos[2] = self._stand_height
        d.qpos[self.qpos_idx] = pose
        d.ctrl[:] = pose
        self._apply_randomization()
        self.servo.reset(pose)
        self._latency = deque(
            [pose.copy() for _ in range(self.latency_steps + 1)], maxlen=self.latency_steps + 1
        )
        mujoco.mj_forward(m, d)

    def _apply_randomization(self) -> None:
        m, r = self.model, self.config["randomization"]
        m.body_mass[:] = self._nominal_mass
        m.body_inertia[:] = self._nominal_inertia
        m.geom_friction[:] = self._nominal_friction
        m.actuator_forcerange[:] = self._nominal_forcerange
        self.gyro_bias = np.zeros(3)
        self.noise = {"gyro": 0.0, "gravity": 0.0}
        self.latency_steps = 0
        self.servo.max_speed[:] = SERVO_MAX_SPEED
        self._next_push = np.inf
        self._push_end = -np.inf
        self.data.xfrc_applied[:] = 0.0
        if not self.randomize:
            return
        u = self.rng.uniform
        scale = u(*r["mass_scale"])
        m.body_mass[self.base_id] = self._nominal_mass[self.base_id] * scale
        m.body_inertia[self.base_id] = self._nominal_inertia[self.base_id] * scale
        m.geom_friction[:, 0] = u(*r["friction"])
        m.actuator_forcerange[:] = self._nominal_forcerange * u(*r["servo_strength"], size=(m.nu, 1))
        self.servo.max_speed[:] = SERVO_MAX_SPEED * u(*r["servo_speed"], size=m.nu)
        self.gyro_bias = u(-r["imu_gyro_bias"], r["imu_gyro_bias"], size=3)
        self.noise = {"gyro": r["imu_gyro_noise"], "gravity": r["imu_gravity_noise"]}
        lo, hi = r["latency_steps"]
        self.latency_steps = int(self.rng.integers(lo, hi + 1))
        self._next_push = u(*r["push_interval_s"])

    # --- stepping --------------------------------------------------------------------------
    def step(self, target: np.ndarray) -> None:
        """Advance one control period with joint ``target`` (rad), after latency and rate limit."""
        self._latency.append(np.asarray(target, dtype=np.float64))
        self.data.ctrl[:] = self.servo.step(self._latency[0], self.control_dt)
        self._maybe_push()
        mujoco.mj_step(self.model, self.data, nstep=self.config["physics_substeps"])

    def _maybe_push(self) -> None:
        t = self.data.time
        r = self.config["randomization"]
        if t >= self._next_push:
            angle = self.rng.uniform(0, 2 * np.pi)
            force = self.rng.uniform(*r["push_force_n"])
            self.data.xfrc_applied[self.base_id, :3] = force * np.array([np.cos(angle), np.sin(angle), 0.0])
            self._push_end = t + r["push_duration_s"]
            self._next_push = t + self.rng.uniform(*r["push_interval_s"])
        elif t >= self._push_end:
            self.data.xfrc_applied[self.base_id, :3] = 0.0

    # --- what the robot can sense ----------------------------------------------------------
    def imu(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(orientation wxyz, gyro rad/s, accel m/s^2) in the IMU/body frame, with noise and bias."""
        s = self.data.sensordata
        quat = s[self._quat_adr : self._quat_adr + 4].copy()
        gyro = s[self._gyro_adr : self._gyro_adr + 3] + self.gyro_bias
        accel = s[self._accel_adr : self._accel_adr + 3].copy()
        if self.noise["gyro"] > 0:
            gyro = gyro + self.rng.normal(0.0, self.noise["gyro"], 3)
        if self.noise["gravity"] > 0:
            # A small random tilt of the filter's estimate: rotation vector with the given std.
            rv = self.rng.normal(0.0, self.noise["gravity"], 3)
            quat = quat_multiply(quat, quat_from_rotvec(rv))
        return quat, gyro, accel

    def joint_estimate(self) -> np.ndarray:
        """The servo-model joint estimate (what the real PiDog reports: it has no encoders)."""
        return self.servo.position.copy()

    # --- privileged state (reward, evaluation, ground truth) -------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.qpos_idx].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.dof_idx].copy()

    def joint_torques(self) -> np.ndarray:
        return self.data.actuator_force.copy()

    def base_position(self) -> np.ndarray:
        return self.data.qpos[0:3].copy()

    def base_quaternion(self) -> np.ndarray:
        return self.data.qpos[3:7].copy()

    def base_linear_velocity_world(self) -> np.ndarray:
        return self.data.qvel[0:3].copy()

    def base_angular_velocity_body(self) -> np.ndarray:
        return self.data.qvel[3:6].copy()

    def heading_velocity(self) -> tuple[float, float]:
        """(forward, lateral) base velocity in the heading (yaw-only) frame, m/s."""
        yaw = yaw_from_quaternion(self.data.qpos[3:7])
        vx, vy = self.data.qvel[0], self.data.qvel[1]
        c, s = np.cos(yaw), np.sin(yaw)
        return float(c * vx + s * vy), float(-s * vx + c * vy)

    def tilt(self) -> tuple[float, float]:
        return roll_pitch_from_gravity(gravity_from_quaternion(self.data.qpos[3:7]))

    def body_touches_ground(self) -> bool:
        d = self.data
        for i in range(d.ncon):
            c = d.contact[i]
            if (c.geom1 == self._floor and c.geom2 in self._fall_geoms) or (
                c.geom2 == self._floor and c.geom1 in self._fall_geoms
            ):
                return True
        return False

    def fallen(self) -> bool:
        roll, pitch = self.tilt()
        limit = self.config["max_tilt_rad"]
        return abs(roll) > limit or abs(pitch) > limit or self.body_touches_ground()
