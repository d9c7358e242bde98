"""The batched PiDog simulation core: N robots, one process, physics on all cores.

Training (an SB3 VecEnv of N robots), ``PiDogEnv`` and ``sim_node`` (batches of one) all run
this class; there is no second copy of the servo model, latency, IMU noise, pushes or
randomisation.

One control step:
1. targets (N, 8) enter a per-robot latency queue (0-2 steps, randomised);
2. the servo model rate-limits them (``pidog_description.servo.rate_limit``, as on the robot);
3. random pushes are scheduled per robot and written as ``xfrc_applied`` rows;
4. ``mujoco.rollout`` advances every robot by ``physics_substeps`` MuJoCo steps on a pool of
   threads, in C with the GIL released, each robot with its own randomised ``MjModel``;
5. robots whose physics diverged (MuJoCo resets a diverging ``MjData``; we see its clock jump)
   or whose state is non-finite are reported, so the caller resets them and the batch goes on.

Everything but the physics is numpy over the batch. All privileged signals (feet, contacts,
actuator forces) come from sensors in ``models/pidog.xml``, so the whole batch's readings
arrive from one rollout call as arrays: a GPU backend (MJX, MuJoCo Warp) could replace step 4
without touching anything above it.

Determinism: each robot owns a random stream (``BatchRandom``) and every control step starts
the constraint solver from a zero warm-start, so robot i of a batch of N follows exactly the
trajectory of a batch of one with the same seed and targets.
"""

from __future__ import annotations

import copy
import os
from typing import Any, cast

import mujoco
import numpy as np
from mujoco import rollout

from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.orientation_filter import ComplementaryFilter
from pidog_description.robot import JOINT_LOWER, JOINT_UPPER, N_JOINTS, SERVO_MAX_SPEED
from pidog_description.rotations import quat_from_rotvec, quat_multiply, yaw_from_quaternion
from pidog_description.servo import rate_limit
from pidog_description.spec import (
    FREEFALL_ACCEL_MPS2,
    IMU_READ_HZ,
    gravity_from_quaternion,
    roll_pitch_from_gravity,
)

from .batch_random import BatchRandom
from .config import CONTACT_TIMECONST_BOUNDS, merge_config
from .model import contact_timeconst, floor_friction, load_model

FEET = ("lf", "rf", "lh", "rh")
FALL_GEOMS = ("torso", "battery", "head")
_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
_CONTROL_SPEC = mujoco.mjtState.mjSTATE_CTRL.value | mujoco.mjtState.mjSTATE_XFRC_APPLIED.value
IMU_ORIENTATIONS = ("noisy_truth", "filter")  # config "imu_orientation"


def default_threads() -> int:
    """Physics threads: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_contact_timeconst(config: dict[str, Any]) -> None:
    """The contact time constant options, refused by name before any robot is built."""
    lo, hi = CONTACT_TIMECONST_BOUNDS
    nominal = config["nominal"]["contact_timeconst"]
    if nominal is not None and (
        isinstance(nominal, bool) or not isinstance(nominal, int | float) or not lo <= nominal <= hi
    ):
        raise ValueError(
            f"nominal.contact_timeconst must be a number of seconds in [{lo}, {hi}], got {nominal!r}"
        )
    span = config["randomization"]["contact_timeconst"]
    if span is None:
        return
    ok = (
        isinstance(span, list | tuple)
        and len(span) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in span)
        and lo <= span[0] <= span[1] <= hi
    )
    if not ok:
        raise ValueError(
            f"randomization.contact_timeconst must be null or (low, high) seconds with "
            f"{lo} <= low <= high <= {hi}, got {span!r}"
        )


STRENGTH_DRAWS = ("joint", "robot")  # randomization.servo_strength_draw


def check_physics_options(config: dict[str, Any]) -> None:
    """The options only the batch reads (contact, servo strength draw), refused by name: when a
    batch is built and when a curriculum changes them (``WalkTask.update_config``), so a bad
    value never falls through to a default draw."""
    _check_contact_timeconst(config)
    _check_strength_draw(config)


def _check_strength_draw(config: dict[str, Any]) -> None:
    """randomization.servo_strength_draw and its spread, refused by name before any robot is built."""
    r = config["randomization"]
    if r["servo_strength_draw"] not in STRENGTH_DRAWS:
        raise ValueError(
            f"randomization.servo_strength_draw must be one of {list(STRENGTH_DRAWS)}, got {r['servo_strength_draw']!r}"
        )
    spread = r["servo_strength_joint_spread"]
    if isinstance(spread, bool) or not isinstance(spread, int | float) or not 0.0 <= spread < 1.0:
        raise ValueError(
            f"randomization.servo_strength_joint_spread must be a share in [0, 1), got {spread!r}"
        )


class BatchSim:
    """N PiDogs with their own randomised models; arrays in, arrays out."""

    def __init__(
        self,
        n: int,
        model_path: str | None = None,
        randomize: bool = True,
        config: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        self.n = _positive_int(n, "n_envs (number of simulated robots)")
        requested = _positive_int(default_threads() if threads is None else threads, "physics_threads")
        self.threads = min(requested, self.n)  # a thread with no robot of its own only adds hand-offs
        self.config = merge_config(config)
        check_physics_options(self.config)
        substeps = self.config["physics_substeps"]
        self.substeps = _positive_int(substeps, "physics_substeps")
        self.randomize = bool(randomize)
        base_model = load_model(model_path)
        self.models = [base_model] + [copy.copy(base_model) for _ in range(self.n - 1)]  # deep copies
        m = base_model
        self.control_dt = m.opt.timestep * self.substeps
        self.rng = BatchRandom(self.n)
        self._index_model(m)

        # Physics buffers: state in, state and sensors per substep out (the last one is "now").
        self.nstate = mujoco.mj_stateSize(m, _STATE_SPEC)
        self.state = np.zeros((self.n, self.nstate))
        self.sensordata = np.zeros((self.n, m.nsensordata))
        self._out_state = np.zeros((self.n, self.substeps, self.nstate))
        self._out_sensors = np.zeros((self.n, self.substeps, m.nsensordata))
        self._control = np.zeros((self.n, self.substeps, m.nu + 6 * m.nbody))
        self._warmstart = np.zeros((self.n, m.nv))  # cold solver start: batch-independent results
        # A thread pool of 0 runs on the calling thread: no hand-off cost for one thread.
        pool_threads = 0 if self.threads == 1 else self.threads
        self._pool = rollout.Rollout(nthread=pool_threads)
        self._thread_data = [mujoco.MjData(m) for _ in range(max(1, pool_threads))]
        self._aux = mujoco.MjData(m)  # reset-time sensor readings and rendering syncs

        # Nominal values that randomisation scales from (identical in every copy).
        self._nominal_mass = m.body_mass.copy()
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_friction = m.geom_friction.copy()
        self._nominal_solref = m.geom_solref.copy()
        self._nominal_forcerange = m.actuator_forcerange.copy()
        self.nominal_kp = m.actuator_gainprm[:, 0].copy()
        self._template = self._stand_state(m)

        # Per-robot state above the physics.
        lat_hi = max(
            int(self.config["randomization"]["latency_steps"][1]),
            int(self.config["nominal"]["latency_steps"]),
        )
        self.servo_position = np.tile(STAND_POSE, (self.n, 1))
        self.servo_max_speed = np.full((self.n, N_JOINTS), SERVO_MAX_SPEED)
        self._history = np.tile(STAND_POSE, (self.n, lat_hi + 1, 1))  # [:, k] = target k steps ago
        self.latency_steps = np.zeros(self.n, dtype=np.int64)
        self.mass_scale = np.ones(self.n)
        self.friction = np.full(self.n, floor_friction(m))
        self.contact_timeconst = np.full(self.n, contact_timeconst(m))
        self.servo_strength = np.ones((self.n, N_JOINTS))
        self.gyro_bias = np.zeros((self.n, 3))
        self.gyro_noise = np.zeros(self.n)
        self.gravity_noise = np.zeros(self.n)
        self._orientation_filter = self._make_orientation_filter(m.opt.timestep)
        self._next_push = np.full(self.n, np.inf)
        self._push_end = np.full(self.n, -np.inf)
        self._push_force = np.zeros((self.n, 3))
        self.unstable_resets = 0
        self.reset(np.arange(self.n), seeds=np.arange(self.n))

    # --- set-up ----------------------------------------------------------------------------
    def _make_orientation_filter(self, timestep: float) -> ComplementaryFilter | None:
        """hw_node's orientation filter over the batch, fed at IMU_READ_HZ from the physics
        steps' sensors (config imu_orientation "filter"), or None for the noisy truth."""
        mode = self.config["imu_orientation"]
        if mode not in IMU_ORIENTATIONS:
            raise ValueError(
                f"sim config option 'imu_orientation' must be one of {IMU_ORIENTATIONS}, got {mode!r}"
            )
        if mode == "noisy_truth":
            return None
        stride = int(round(1.0 / (IMU_READ_HZ * timestep)))
        # The physics steps whose sensors the filter reads, each stride steps after the last.
        self._imu_samples = np.arange(stride - 1, self.substeps, stride)
        if self._imu_samples.size == 0:
            raise ValueError(
                f"imu_orientation 'filter' reads the IMU at {IMU_READ_HZ:g} Hz; a control step of "
                f"{self.substeps} physics steps holds no sample (physics_substeps must be >= {stride})"
            )
        self._imu_dt = stride * timestep
        try:
            return ComplementaryFilter(gain=float(self.config["imu_filter_gain"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sim config option 'imu_filter_gain': {exc}") from None

    def _index_model(self, m: mujoco.MjModel) -> None:
        joint_ids = [m.joint(name).id for name in JOINT_NAMES]
        qpos_idx = np.array([m.jnt_qposadr[j] for j in joint_ids])
        dof_idx = np.array([m.jnt_dofadr[j] for j in joint_ids])
        # FULLPHYSICS state = [time, qpos, qvel, ...]: column offsets into self.state.
        self._t_col = 0
        self._qpos0 = 1
        self._qvel0 = 1 + m.nq
        self.nq, self.nv = m.nq, m.nv
        self.joint_qpos_cols = self._qpos0 + qpos_idx
        self.joint_qvel_cols = self._qvel0 + dof_idx
        self.base_id = m.body("base_link").id
        self._xfrc_col = m.nu + 6 * self.base_id

        def sensor(name: str) -> slice:
            sid = m.sensor(name).id
            return slice(int(m.sensor_adr[sid]), int(m.sensor_adr[sid] + m.sensor_dim[sid]))

        self._s_quat = sensor("imu_quat")
        self._s_gyro = sensor("imu_gyro")
        self._s_accel = sensor("imu_accel")
        self._s_foot_pos = [sensor(f"{leg}_foot_pos") for leg in FEET]
        self._s_foot_vel = [sensor(f"{leg}_foot_vel") for leg in FEET]
        self._s_force = [sensor(f"{name}_force") for name in JOINT_NAMES]
        self._s_foot_contact = [sensor(f"{leg}_foot_contact") for leg in FEET]
        self._s_fall_contact = [sensor(f"{geom}_contact") for geom in FALL_GEOMS]
        self._foot_pos_cols = np.concatenate([np.arange(s.start, s.stop) for s in self._s_foot_pos])
        self._foot_vel_cols = np.concatenate([np.arange(s.start, s.stop) for s in self._s_foot_vel])
        self._force_cols = np.array([s.start for s in self._s_force])
        self._foot_contact_cols = np.array([s.start for s in self._s_foot_contact])
        self._fall_contact_cols = np.array([s.start for s in self._s_fall_contact])

    def _stand_state(self, m: mujoco.MjModel) -> np.ndarray:
        d = self._aux
        mujoco.mj_resetData(m, d)
        d.qpos[2] = float(m.body_pos[self.base_id][2])
        state = np.zeros(self.nstate)
        mujoco.mj_getState(m, d, state, _STATE_SPEC)
        return state

    # --- episodes --------------------------------------------------------------------------
    def reset(
        self,
        robots: np.ndarray,
        seeds: np.ndarray | None = None,
        initial_pose: np.ndarray | None = None,
    ) -> None:
        """Reset ``robots`` (indices) to the stand pose (or ``initial_pose``), re-randomised.

        ``seeds`` restarts those robots' random streams first; without it they continue.
        """
        robots = np.atleast_1d(np.asarray(robots, dtype=np.int64))
        if robots.size == 0:
            return
        if seeds is not None:
            self.rng.seed(robots, np.broadcast_to(np.asarray(seeds), robots.shape))
        pose = np.broadcast_to(
            STAND_POSE if initial_pose is None else np.asarray(initial_pose, dtype=np.float64),
            (robots.size, N_JOINTS),
        )
        pose = np.clip(pose, JOINT_LOWER, JOINT_UPPER)
        self._randomize(robots)
        if self._orientation_filter is not None:
            self._orientation_filter.reset(robots)
        state = np.tile(self._template, (robots.size, 1))
        state[:, self.joint_qpos_cols] = pose
        self.state[robots] = state
        self.servo_position[robots] = pose
        self._history[robots] = pose[:, None, :]
        # Sensors of the fresh state (the first observation): one forward pass per reset robot,
        # outside the hot path (a robot resets once per episode).
        for i in robots:
            self.sync_data(int(i), self._aux)
            self.sensordata[i] = self._aux.sensordata

    def _randomize(self, robots: np.ndarray) -> None:
        r = self.config["randomization"]
        nom = self.config["nominal"]
        k = robots.size
        u = self.rng.uniform
        if self.randomize:
            mass_scale = u(robots, *r["mass_scale"])[:, 0]
            friction = u(robots, *r["friction"])[:, 0]
            (strength_lo, strength_hi), (speed_lo, speed_hi) = r["servo_strength"], r["servo_speed"]
            strength = u(robots, strength_lo, strength_hi, k=N_JOINTS)
            self.servo_max_speed[robots] = SERVO_MAX_SPEED * u(robots, speed_lo, speed_hi, k=N_JOINTS)
            self.gyro_bias[robots] = np.asarray(nom["imu_gyro_bias"], dtype=np.float64) + u(
                robots, -r["imu_gyro_bias"], r["imu_gyro_bias"], k=3
            )
            self.gyro_noise[robots] = r["imu_gyro_noise"]
            self.gravity_noise[robots] = r["imu_gravity_noise"]
            lo, hi = r["latency_steps"]
            self.latency_steps[robots] = self.rng.integers(robots, int(lo), int(hi))
            self._next_push[robots] = u(robots, *r["push_interval_s"])[:, 0]
            # Drawn last and only when asked for: every other draw stays what it was without it.
            contact = u(robots, *r["contact_timeconst"])[:, 0] if r["contact_timeconst"] is not None else None
            if r["servo_strength_draw"] == "robot":  # also drawn after the rest, for the same reason
                # The joints' own draws, mapped to [-1, 1], become their spread around the robot's
                # (none when the range is a single value).
                span = strength_hi - strength_lo
                unit = (strength - strength_lo) / span if span > 0 else np.full_like(strength, 0.5)
                spread = r["servo_strength_joint_spread"] * (2.0 * unit - 1.0)
                strength = u(robots, strength_lo, strength_hi) * (1.0 + spread)
        else:
            # Nominal: the model's values, or a robot parameters file's (config "nominal").
            mass_scale = np.full(k, float(nom["mass_scale"]))
            friction = None if nom["friction"] is None else np.full(k, float(nom["friction"]))
            strength = np.full((k, N_JOINTS), float(nom["servo_strength"]))
            self.servo_max_speed[robots] = SERVO_MAX_SPEED * float(nom["servo_speed"])
            self.gyro_bias[robots] = np.asarray(nom["imu_gyro_bias"], dtype=np.float64)
            self.gyro_noise[robots] = 0.0
            self.gravity_noise[robots] = 0.0
            self.latency_steps[robots] = int(nom["latency_steps"])
            self._next_push[robots] = np.inf
            contact = None
        if contact is None and nom["contact_timeconst"] is not None:
            contact = np.full(k, float(nom["contact_timeconst"]))
        self._push_end[robots] = -np.inf
        self._push_force[robots] = 0.0
        self.set_physics(robots, mass_scale, strength, friction, contact)

    def set_physics(
        self,
        robots: np.ndarray,
        mass_scale: np.ndarray,
        strength: np.ndarray,
        friction: np.ndarray | None = None,
        contact_timeconst: np.ndarray | None = None,
    ) -> None:
        """Give ``robots`` these physical parameters (each over ``robots``; strength (k, 8) or
        (k, 1)): torso mass and inertia scale, servo stall torque multipliers, foot friction and
        contact time constant (None: the model's own). Takes effect at the next step; the
        identification (pidog-sysid) sets its candidates' physics through here too."""
        k = len(robots)
        strength = np.broadcast_to(np.asarray(strength, dtype=np.float64).reshape(k, -1), (k, N_JOINTS))
        self.mass_scale[robots] = mass_scale
        self.friction[robots] = self._nominal_friction[0, 0] if friction is None else friction
        self.contact_timeconst[robots] = (
            self._nominal_solref[0, 0] if contact_timeconst is None else contact_timeconst
        )
        self.servo_strength[robots] = strength
        # Writing into each robot's MjModel is per robot by nature (MJX would hold these as
        # batched arrays); it happens at reset only.
        for row, i in enumerate(robots):
            m = self.models[i]
            m.body_mass[:] = self._nominal_mass
            m.body_inertia[:] = self._nominal_inertia
            m.body_mass[self.base_id] *= mass_scale[row]
            m.body_inertia[self.base_id] *= mass_scale[row]
            m.geom_friction[:] = self._nominal_friction
            if friction is not None:
                m.geom_friction[:, 0] = friction[row]
            # Every geom alike: a contact mixes its two geoms' solref, so the floor's contact
            # with each foot gets exactly this time constant.
            m.geom_solref[:] = self._nominal_solref
            if contact_timeconst is not None:
                m.geom_solref[:, 0] = contact_timeconst[row]
            m.actuator_forcerange[:] = self._nominal_forcerange * strength[row][:, None]

    def reserve_latency(self, steps: int) -> None:
        """Keep enough target history for ``steps`` of latency (a curriculum may widen
        randomization.latency_steps during training). The added, older slots repeat each
        robot's oldest target: what its servos were told before the history began."""
        missing = int(steps) + 1 - self._history.shape[1]
        if missing > 0:
            oldest = np.repeat(self._history[:, -1:], missing, axis=1)
            self._history = np.concatenate([self._history, oldest], axis=1)

    # --- stepping --------------------------------------------------------------------------
    def step(self, targets: np.ndarray) -> np.ndarray:
        """Advance every robot one control period toward joint ``targets`` (N, 8), rad.

        Returns a bool mask of robots whose physics went unstable during this step; their
        state is not trustworthy: reset them (``reset``) before using their readings.
        """
        targets = np.asarray(targets, dtype=np.float64).reshape(self.n, N_JOINTS)
        rows = np.arange(self.n)
        self._history[:, 1:] = self._history[:, :-1]
        self._history[:, 0] = targets
        delayed = self._history[rows, self.latency_steps]
        self.servo_position = rate_limit(self.servo_position, delayed, self.servo_max_speed * self.control_dt)
        self._control[:, :, :N_JOINTS] = self.servo_position[:, None, :]
        self._schedule_pushes()
        self._control[:, :, self._xfrc_col : self._xfrc_col + 3] = self._push_force[:, None, :]

        expected_time = self.state[:, self._t_col] + self.control_dt
        self._pool.rollout(
            self.models,
            self._thread_data,
            self.state,
            self._control,
            control_spec=_CONTROL_SPEC,
            skip_checks=True,
            nstep=self.substeps,
            initial_warmstart=self._warmstart,
            state=self._out_state,
            sensordata=self._out_sensors,
            chunk_size=max(1, self.n // (4 * self.threads)),
        )
        self.state[:] = self._out_state[:, -1]
        self.sensordata[:] = self._out_sensors[:, -1]
        # MuJoCo resets an MjData whose accelerations blow up (its clock restarts at 0).
        unstable = ~np.isfinite(self.state).all(axis=1) | (
            np.abs(self.state[:, self._t_col] - expected_time) > 0.5 * self.control_dt
        )
        self.unstable_resets += int(unstable.sum())
        if self._orientation_filter is not None:
            self._filter_imu(unstable)
        return unstable

    def _filter_imu(self, unstable: np.ndarray) -> None:
        """Feed this control step's IMU samples to the orientation filter; a diverged robot's
        estimate starts over (its caller resets it)."""
        assert self._orientation_filter is not None  # called only when there is a filter
        for k in self._imu_samples:
            s = self._out_sensors[:, k]
            # A diverged robot's readings may not be finite; the filter refuses those, and its
            # estimate is dropped below anyway.
            self._orientation_filter.update(
                np.nan_to_num(s[:, self._s_gyro] + self.gyro_bias, nan=0.0, posinf=0.0, neginf=0.0),
                np.nan_to_num(s[:, self._s_accel], nan=0.0, posinf=0.0, neginf=0.0),
                self._imu_dt,
            )
        self._orientation_filter.reset(np.flatnonzero(unstable))

    def _schedule_pushes(self) -> None:
        r = self.config["randomization"]
        t = self.state[:, self._t_col]
        start = np.flatnonzero(t >= self._next_push)
        if start.size:
            angle = self.rng.uniform(start, 0.0, 2.0 * np.pi)[:, 0]
            force = self.rng.uniform(start, *r["push_force_n"])[:, 0]
            self._push_force[start] = force[:, None] * np.stack(
                [np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=1
            )
            self._push_end[start] = t[start] + r["push_duration_s"]
            self._next_push[start] = t[start] + self.rng.uniform(start, *r["push_interval_s"])[:, 0]
        ended = (t >= self._push_end) & (t < self._next_push)
        ended[start] = False
        self._push_force[ended] = 0.0

    # --- what the robot can sense ----------------------------------------------------------
    def imu(self, robots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(orientation wxyz, gyro rad/s, accel m/s^2) of ``robots`` (default all), noisy, biased.

        Draws noise for those robots only, so a robot's readings never depend on its batch.
        """
        rows = np.arange(self.n) if robots is None else np.asarray(robots, dtype=np.int64)
        s = self.sensordata[rows]
        noise = self.rng.normal(rows, k=6)
        gyro = s[:, self._s_gyro] + self.gyro_bias[rows] + self.gyro_noise[rows, None] * noise[:, :3]
        if self._orientation_filter is not None:
            return self._filtered_orientation(rows), gyro, s[:, self._s_accel]
        # A small random tilt of the filter's estimate: rotation vector with the given std.
        rotvec = self.gravity_noise[rows, None] * noise[:, 3:]
        quat = quat_multiply(s[:, self._s_quat], quat_from_rotvec(rotvec))
        return quat, gyro, s[:, self._s_accel]

    def _filtered_orientation(self, rows: np.ndarray) -> np.ndarray:
        """The filter's estimate for ``rows``; a robot with none yet (just reset) gets the
        accelerometer-only start the filter itself would take (roll and pitch, yaw 0)."""
        assert self._orientation_filter is not None  # called only when there is a filter
        q = self._orientation_filter.q
        if q is None:
            return ComplementaryFilter.from_accel(self.sensordata[rows][:, self._s_accel])
        q = q[rows]  # a copy (fancy indexing): the filter's state stays its own
        fresh = np.isnan(q[:, 0])
        if fresh.any():
            q[fresh] = ComplementaryFilter.from_accel(self.sensordata[rows[fresh]][:, self._s_accel])
        return q

    def joint_estimate(self, robots: np.ndarray | None = None) -> np.ndarray:
        """The servo-model joint estimate (what the real PiDog reports: it has no encoders)."""
        return self.servo_position.copy() if robots is None else self.servo_position[robots]

    # --- privileged state (reward, evaluation, ground truth) -------------------------------
    def specific_force_trace(self) -> np.ndarray:
        """(N, substeps, 3) accelerometer readings, m/s^2, body frame, at every physics step of
        the last control period (2 ms apart): a robot's IMU samples far faster than the policy
        runs. Noise-free: evaluation reads it beside the policy's own IMU draws and must not
        shift their random stream."""
        return self._out_sensors[:, :, self._s_accel]

    def low_g_trace(self) -> np.ndarray:
        """(N, substeps) bool: the physics steps of the last control period whose accelerometer
        reading is below hw_node's free-fall threshold (FREEFALL_ACCEL_MPS2): the body in flight,
        as a bouncing gait throws it."""
        return np.linalg.norm(self.specific_force_trace(), axis=2) < FREEFALL_ACCEL_MPS2

    @property
    def time(self) -> np.ndarray:
        return self.state[:, self._t_col]

    @property
    def qpos(self) -> np.ndarray:
        """(N, nq) writable view of the generalised positions (tests, tools: set a pose)."""
        return self.state[:, self._qpos0 : self._qpos0 + self.nq]

    @property
    def qvel(self) -> np.ndarray:
        """(N, nv) writable view of the generalised velocities."""
        return self.state[:, self._qvel0 : self._qvel0 + self.nv]

    def joint_positions(self) -> np.ndarray:
        return self.state[:, self.joint_qpos_cols]

    def joint_velocities(self) -> np.ndarray:
        return self.state[:, self.joint_qvel_cols]

    def joint_torques(self) -> np.ndarray:
        return self.sensordata[:, self._force_cols]

    def base_position(self) -> np.ndarray:
        return self.state[:, self._qpos0 : self._qpos0 + 3]

    def base_quaternion(self) -> np.ndarray:
        return self.state[:, self._qpos0 + 3 : self._qpos0 + 7]

    def base_linear_velocity_world(self) -> np.ndarray:
        return self.state[:, self._qvel0 : self._qvel0 + 3]

    def base_angular_velocity_body(self) -> np.ndarray:
        return self.state[:, self._qvel0 + 3 : self._qvel0 + 6]

    def heading_velocity(self) -> np.ndarray:
        """(N, 2): forward and lateral base velocity in the heading (yaw-only) frame, m/s."""
        yaw = yaw_from_quaternion(self.base_quaternion())
        v = self.base_linear_velocity_world()
        c, s = np.cos(yaw), np.sin(yaw)
        return np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], axis=1)

    def yaw_rate(self) -> np.ndarray:
        """World-frame yaw rate (rad/s): body angular velocity projected on world up."""
        up = -gravity_from_quaternion(self.base_quaternion())
        return np.sum(self.base_angular_velocity_body() * up, axis=1)

    def gravity_body(self) -> np.ndarray:
        return gravity_from_quaternion(self.base_quaternion())

    def tilt(self) -> tuple[np.ndarray, np.ndarray]:
        # (N, 3) gravity: the batch form, arrays rather than floats.
        return cast(tuple[np.ndarray, np.ndarray], roll_pitch_from_gravity(self.gravity_body()))

    def foot_positions(self) -> np.ndarray:
        """(N, 4, 3) world positions of the feet (LF, RF, LH, RH)."""
        return self.sensordata[:, self._foot_pos_cols].reshape(self.n, 4, 3)

    def foot_velocities(self) -> np.ndarray:
        """(N, 4, 3) world linear velocities of the feet."""
        return self.sensordata[:, self._foot_vel_cols].reshape(self.n, 4, 3)

    def foot_contacts(self) -> np.ndarray:
        """(N, 4) bool: foot touches the floor."""
        return self.sensordata[:, self._foot_contact_cols] > 0

    def body_touches_ground(self) -> np.ndarray:
        # any(axis=1) of a 2-D array: an array (numpy's stub also allows a scalar).
        return cast(np.ndarray, (self.sensordata[:, self._fall_contact_cols] > 0).any(axis=1))

    def fallen(self) -> np.ndarray:
        roll, pitch = self.tilt()
        limit: float = self.config["max_tilt_rad"]
        return (np.abs(roll) > limit) | (np.abs(pitch) > limit) | self.body_touches_ground()

    def physical_parameters(self, robots: np.ndarray) -> list[np.ndarray]:
        """The randomised physics of ``robots``: mass scale, friction, servo strength (8),
        latency steps, push force (3); each (k, size)."""
        return [
            self.mass_scale[robots, None],
            self.friction[robots, None],
            self.servo_strength[robots],
            self.latency_steps[robots, None].astype(np.float64),
            self._push_force[robots],
        ]

    # --- one robot's full MjData (rendering, ROS ground truth) ------------------------------
    def sync_data(self, i: int, data: mujoco.MjData) -> mujoco.MjData:
        """Fill ``data`` with robot ``i``'s current state (positions, contacts, sensors)."""
        m = self.models[i]
        mujoco.mj_resetData(m, data)
        mujoco.mj_setState(m, data, self.state[i], _STATE_SPEC)
        data.ctrl[:] = self.servo_position[i]
        mujoco.mj_forward(m, data)
        return data

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
