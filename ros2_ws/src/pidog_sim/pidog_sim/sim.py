"""One simulated PiDog: a batch of one of the batched core, with a per-robot interface.

``sim_node`` (and anything that wants one robot as vectors and floats) uses this facade; it
holds no simulation code of its own: stepping, servo model, latency, noise, pushes and
randomisation are ``BatchSim``'s.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from .batch import BatchSim

_ROBOT = np.array([0])


class PiDogSim:
    def __init__(
        self,
        model_path: str | None = None,
        randomize: bool = True,
        config: dict[str, Any] | None = None,
        batch: BatchSim | None = None,
    ) -> None:
        if batch is not None and batch.n != 1:
            raise ValueError(f"PiDogSim wraps a batch of one robot, got {batch.n}")
        self.batch = batch or BatchSim(
            1, model_path=model_path, randomize=randomize, config=config, threads=1
        )
        self.config = self.batch.config
        self.randomize = self.batch.randomize
        self.model = self.batch.models[0]
        self.control_dt = self.batch.control_dt
        self.nominal_kp = self.batch.nominal_kp
        self._data = mujoco.MjData(self.model)
        self._data_time: float | None = None

    @property
    def data(self) -> mujoco.MjData:
        """A full MjData of the current state (contacts, body poses) for rendering and tools.

        Read-only in spirit: the batch's state is the truth; this is re-filled when stale.
        """
        t = float(self.batch.time[0])
        if self._data_time != t:
            self.batch.sync_data(0, self._data)
            self._data_time = t
        return self._data

    @property
    def time(self) -> float:
        return float(self.batch.time[0])

    # --- episode ---------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, initial_pose: np.ndarray | None = None) -> None:
        """New episode; its randomisation and noise follow from ``rng``."""
        seed = int(rng.integers(0, 2**63 - 1))
        self.batch.reset(_ROBOT, seeds=np.array([seed]), initial_pose=initial_pose)
        self._data_time = None

    def step(self, target: np.ndarray) -> bool:
        """Advance one control period toward ``target`` (rad); True if physics went unstable.

        An unstable robot is put back on its feet at once (its random stream continues).
        """
        unstable = bool(self.batch.step(np.asarray(target, dtype=np.float64)[None])[0])
        if unstable:
            self.batch.reset(_ROBOT)
        return unstable

    # --- what the robot can sense ----------------------------------------------------------
    def imu(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(orientation wxyz, gyro rad/s, accel m/s^2) in the IMU/body frame, with noise and bias."""
        quat, gyro, accel = self.batch.imu(_ROBOT)
        return quat[0], gyro[0], accel[0].copy()

    def joint_estimate(self) -> np.ndarray:
        return self.batch.joint_estimate(_ROBOT)[0].copy()

    # --- privileged state ------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.batch.joint_positions()[0].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.batch.joint_velocities()[0].copy()

    def joint_torques(self) -> np.ndarray:
        return self.batch.joint_torques()[0].copy()

    def base_position(self) -> np.ndarray:
        return self.batch.base_position()[0].copy()

    def base_quaternion(self) -> np.ndarray:
        return self.batch.base_quaternion()[0].copy()

    def base_linear_velocity_world(self) -> np.ndarray:
        return self.batch.base_linear_velocity_world()[0].copy()

    def base_angular_velocity_body(self) -> np.ndarray:
        return self.batch.base_angular_velocity_body()[0].copy()

    def heading_velocity(self) -> tuple[float, float]:
        forward, lateral = self.batch.heading_velocity()[0]
        return float(forward), float(lateral)

    def yaw_rate(self) -> float:
        return float(self.batch.yaw_rate()[0])

    def tilt(self) -> tuple[float, float]:
        roll, pitch = self.batch.tilt()
        return float(roll[0]), float(pitch[0])

    def body_touches_ground(self) -> bool:
        return bool(self.batch.body_touches_ground()[0])

    def fallen(self) -> bool:
        return bool(self.batch.fallen()[0])

    def close(self) -> None:
        self.batch.close()
