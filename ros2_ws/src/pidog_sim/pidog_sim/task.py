"""The walking task over a batch: commands, observation, reward, termination.

``WalkTask`` sits on ``BatchSim`` and is the one implementation behind the SB3 VecEnv
(N robots, automatic resets) and ``PiDogEnv`` (a batch of one). Every method works on arrays
over the batch; the observation is built by ``pidog_description.spec.build_observation`` (the
same function the policy node and the bag importer use) from signals the robot has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from pidog_description import STAND_POSE
from pidog_description.robot import LEG_NAMES
from pidog_description.spec import (
    ACTION_DIM,
    COMMAND_LIMITS,
    CONTROL_DT,
    GAIT_PERIOD_S,
    FrameHistory,
    ObservationLayout,
    action_filter_alpha,
    append_past,
    build_observation,
    check_action_filter_hz,
    filter_action,
    gravity_from_quaternion,
    observation_frame,
    observation_layout,
    sanitize_action,
    sanitized_action_to_target,
    seconds_to_steps,
)

from .batch import BatchSim, check_physics_options
from .config import merge_config
from .model import foot_radii

# A flight shorter than this is contact chatter, not a step: a foot hopping off the floor for a
# control period lands sliding (the gait meter's chatter count and the reward's chatter term).
MIN_SWING_S = 0.04

COMMAND_MODES = ("fixed", "sample")

PRIVILEGED_LAYOUT: tuple[tuple[str, int], ...] = (
    ("base_velocity", 3),  # heading frame: forward, lateral, vertical (m/s)
    ("base_height", 1),  # m above the floor
    ("velocity_average", 2),  # the tracking window's forward speed and yaw rate
    ("foot_contact", 4),
    ("joint_velocity", 8),  # true, rad/s
    ("servo_lag", 8),  # true joint angle minus the servo-model estimate, rad
    ("mass_scale", 1),
    ("friction", 1),
    ("servo_strength", 8),  # stall torque multipliers
    ("latency_steps", 1),
    ("push_force", 3),  # N, world frame
)
"""What only the simulator knows, for an asymmetric critic. Never part of the policy input:
the actor and the exported ONNX see the deployable observation alone."""
PRIVILEGED_DIM: int = sum(size for _name, size in PRIVILEGED_LAYOUT)

RUNTIME_OPTIONS: tuple[str, ...] = (
    "forward_speed",
    "command_ranges",
    "command_resample_s",
    "command_special",
    "reward",
    "randomization",
)
"""Sim config groups ``WalkTask.update_config`` may change while robots run (a training
curriculum): read afresh at each reset, command draw or step. The rest (episode length, physics,
the IMU model, the nominal robot) shapes state the task has already built, and so does
reward.track_window_s (the length of the tracking average)."""


class WalkTask:
    """Follow a commanded (vx, wz) on N randomised simulated PiDogs."""

    def __init__(
        self,
        n: int,
        randomize: bool = True,
        config: dict[str, Any] | None = None,
        model_path: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.sim = BatchSim(n, model_path=model_path, randomize=randomize, config=config, threads=threads)
        self.n = self.sim.n
        self.cfg = self.sim.config
        validate_task_config(self.cfg, self.sim.control_dt)
        self.max_steps = seconds_to_steps(self.cfg["episode_seconds"])
        self.window = max(1, seconds_to_steps(self.cfg["reward"]["track_window_s"]))
        self.command = np.zeros((self.n, 2))
        self.phase = np.zeros(self.n)
        self.last_action = np.zeros((self.n, ACTION_DIM))
        # The observation's past frames (obs_history > 0; docs/ABLATIONS.md, thirty-third
        # session): what the robot felt the steps before, as the policy node will keep it.
        self.layout: ObservationLayout = observation_layout(self.cfg["obs_history"])
        self.filter_alpha = action_filter_alpha(self.cfg["action_filter_hz"])
        self.history = FrameHistory(self.layout.history, self.n)
        self.steps = np.zeros(self.n, dtype=np.int64)
        self.start_xy = np.zeros((self.n, 2))
        self.next_command_step = np.zeros(self.n, dtype=np.int64)
        self._vel_history = np.zeros((self.n, self.window, 2))  # (forward, yaw rate) ring buffer
        self.fixed_command = np.zeros(self.n, dtype=bool)  # a reset with an explicit command keeps it
        # s each foot has been off the floor (0 in contact; kept only while reward.feet_air_time
        # or reward.chatter, its readers, is weighted)
        self.air_time = np.zeros((self.n, len(LEG_NAMES)))
        self.foot_down = np.ones((self.n, len(LEG_NAMES)), dtype=bool)  # contact after the last step
        # m, highest the sole has been since the foot left the floor (0 in contact; kept only while
        # reward.swing_height, its one reader, is weighted)
        self.swing_peak = np.zeros((self.n, len(LEG_NAMES)))
        self._sole_offset = foot_radii(self.sim.models[0])
        self.reset(np.arange(self.n), seeds=np.arange(self.n))

    # --- episodes --------------------------------------------------------------------------
    def reset(
        self,
        robots: np.ndarray,
        seeds: np.ndarray | None = None,
        commands: np.ndarray | None = None,
        initial_pose: np.ndarray | None = None,
    ) -> None:
        """Start new episodes for ``robots``; ``commands`` (k, 2) pins their command."""
        robots = np.atleast_1d(np.asarray(robots, dtype=np.int64))
        if robots.size == 0:
            return
        self.sim.reset(robots, seeds=seeds, initial_pose=initial_pose)
        self.phase[robots] = 0.0
        self.last_action[robots] = 0.0
        self.history.reset(robots)
        self.steps[robots] = 0
        self.start_xy[robots] = self.sim.base_position()[robots, :2]
        self._vel_history[robots] = 0.0
        self.air_time[robots] = 0.0
        self.foot_down[robots] = True
        self.swing_peak[robots] = 0.0
        self.fixed_command[robots] = commands is not None
        if commands is not None:
            self.command[robots] = np.broadcast_to(np.asarray(commands, dtype=np.float64), (robots.size, 2))
        else:
            self._new_commands(robots)

    def _new_commands(self, robots: np.ndarray) -> None:
        cfg = self.cfg
        if cfg["command_mode"] == "fixed":
            self.command[robots] = (cfg["forward_speed"], 0.0)
            self.next_command_step[robots] = np.iinfo(np.int64).max
            return
        rng = self.sim.rng
        ranges = cfg["command_ranges"]
        draws = rng.uniform(robots, k=4)  # vx, wz, which special case, resample time
        vx = ranges["vx"][0] + (ranges["vx"][1] - ranges["vx"][0]) * draws[:, 0]
        wz = ranges["wz"][0] + (ranges["wz"][1] - ranges["wz"][0]) * draws[:, 1]
        special = cfg["command_special"]
        p_stand, p_turn, p_straight = special["stand"], special["turn_in_place"], special["straight"]
        u = draws[:, 2]
        stand = u < p_stand
        turn = (u >= p_stand) & (u < p_stand + p_turn)
        straight = (u >= p_stand + p_turn) & (u < p_stand + p_turn + p_straight)
        vx = np.where(stand | turn, 0.0, vx)
        wz = np.where(stand | straight, 0.0, wz)
        self.command[robots] = np.stack([vx, wz], axis=1)
        lo, hi = cfg["command_resample_s"]
        seconds = lo + (hi - lo) * draws[:, 3]
        self.next_command_step[robots] = self.steps[robots] + np.maximum(1, np.round(seconds / CONTROL_DT))

    def update_config(self, overrides: Mapping[str, Any]) -> None:
        """Change RUNTIME_OPTIONS while the robots run: new weights from the next step, new
        ranges from each robot's next reset or command draw. Raises ValueError naming an option
        that cannot change or a value that makes no sense, and then changes nothing."""
        for key in overrides:
            if key not in RUNTIME_OPTIONS:
                raise ValueError(
                    f"sim config option '{key}' cannot change while the robots run; "
                    f"only {list(RUNTIME_OPTIONS)} may"
                )
        merged = merge_config(overrides, self.cfg)
        if merged["reward"]["track_window_s"] != self.cfg["reward"]["track_window_s"]:
            # It sizes the tracking ring buffer the reward has been averaging over.
            raise ValueError("sim config option 'reward.track_window_s' cannot change while the robots run")
        validate_task_config(merged, self.sim.control_dt)
        check_physics_options(merged)
        weights_before = dict(self.cfg["reward"])
        self.sim.reserve_latency(int(merged["randomization"]["latency_steps"][1]))
        self.cfg.update(merged)  # in place: the batch reads the same dict
        # A swing tracker is kept only while its term is weighted: one turned on now starts
        # from zero instead of whatever it held when it stopped.
        if not _tracks_air_time(weights_before) and _tracks_air_time(self.cfg["reward"]):
            self.air_time[:] = 0.0
        if not weights_before["swing_height"] and self.cfg["reward"]["swing_height"]:
            self.swing_peak[:] = 0.0

    # --- stepping --------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> dict[str, Any]:
        """Apply (N, 8) actions for one control period; returns arrays over the batch.

        Keys: reward, terminated (fell), truncated (time limit), unstable (physics diverged:
        also terminated), forward_speed, yaw_rate, terms (dict of reward terms).
        """
        # What the servos are told: the policy's action, through the action filter if there is
        # one (the previous executed action, the observed last action, is its state).
        actions = filter_action(
            self.last_action,
            sanitize_action(np.asarray(actions).reshape(self.n, ACTION_DIM)),
            self.filter_alpha,
        )
        self.history.shift()
        unstable = self.sim.step(sanitized_action_to_target(actions))
        prev_action = self.last_action
        self.last_action = actions
        self.phase = (self.phase + CONTROL_DT / GAIT_PERIOD_S) % 1.0
        self.steps += 1
        velocity = self.sim.heading_velocity()
        yaw_rate = self.sim.yaw_rate()
        self._vel_history[np.arange(self.n), self.steps % self.window] = np.stack(
            [velocity[:, 0], yaw_rate], axis=1
        )
        fell = self.sim.fallen() | unstable
        contact = self.sim.foot_contacts()
        reward, terms = self._reward(actions, prev_action, fell, velocity, yaw_rate, contact)
        # Each swing tracker is kept only while its one reader, a reward term, is weighted
        # (update_config restarts one whose term is turned on): 14 and 9 us of an 11-16 ms
        # 64-robot step.
        if _tracks_air_time(self.cfg["reward"]):
            self.air_time = np.where(contact, 0.0, self.air_time + CONTROL_DT)
        if self.cfg["reward"]["swing_height"]:
            sole = self.sim.foot_positions()[:, :, 2] - self._sole_offset
            self.swing_peak = np.where(contact, 0.0, np.maximum(self.swing_peak, sole))
        self.foot_down = contact
        if unstable.any():  # nothing about a diverged robot is worth learning from
            reward[unstable] = 0.0
            for values in terms.values():  # and the logged terms still add up to its reward
                values[unstable] = 0.0
        truncated = (self.steps >= self.max_steps) & ~fell
        resample = np.flatnonzero((self.steps >= self.next_command_step) & ~self.fixed_command)
        if resample.size:
            self._new_commands(resample)
        return {
            "reward": reward,
            "terminated": fell,
            "truncated": truncated,
            "unstable": unstable,
            "forward_speed": velocity[:, 0],
            "yaw_rate": yaw_rate,
            "terms": terms,
        }

    def observe(self, robots: np.ndarray | None = None) -> np.ndarray:
        """Policy observations (k, layout.dim) of ``robots`` (default all), float32."""
        rows = np.arange(self.n) if robots is None else np.asarray(robots, dtype=np.int64)
        quat, gyro, _accel = self.sim.imu(rows)
        obs = build_observation(
            gravity_body=gravity_from_quaternion(quat),
            gyro=gyro,
            joint_pos=self.sim.joint_estimate(rows),
            last_action=self.last_action[rows],
            phase=self.phase[rows],
            command=self.command[rows],
        )
        if not self.layout.history:
            return obs
        return append_past(obs, self.history.observe(observation_frame(obs), rows))

    def privileged(self, robots: np.ndarray | None = None) -> np.ndarray:
        """(k, PRIVILEGED_DIM) float32 privileged state of ``robots`` (default all), PRIVILEGED_LAYOUT order."""
        rows = np.arange(self.n) if robots is None else np.asarray(robots, dtype=np.int64)
        sim = self.sim
        heading = sim.heading_velocity()[rows]
        parts = [
            heading,
            sim.base_linear_velocity_world()[rows, 2:3],
            sim.base_position()[rows, 2:3],
            self.averaged_velocity()[rows],
            sim.foot_contacts()[rows].astype(np.float64),
            sim.joint_velocities()[rows],
            sim.joint_positions()[rows] - sim.servo_position[rows],
            *sim.physical_parameters(rows),
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def averaged_velocity(self) -> np.ndarray:
        """(N, 2) forward speed and yaw rate averaged over the tracking window (so far)."""
        filled = np.minimum(self.steps, self.window)[:, None]
        return self._vel_history.sum(axis=1) / np.maximum(filled, 1)

    def distance(self) -> np.ndarray:
        """(N,) displacement since reset along the start heading's x axis (world x at reset)."""
        return self.sim.base_position()[:, 0] - self.start_xy[:, 0]

    def _reward(
        self,
        action: np.ndarray,
        prev_action: np.ndarray,
        fell: np.ndarray,
        velocity: np.ndarray,
        yaw_rate: np.ndarray,
        contacts: np.ndarray,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        w = self.cfg["reward"]
        sim = self.sim
        avg = self.averaged_velocity()

        # Each read by more than one term: computed once per step when any of them is weighted.
        @functools.cache
        def foot_speed_xy() -> np.ndarray:
            return np.linalg.norm(sim.foot_velocities()[:, :, :2], axis=2)

        @functools.cache
        def touchdowns() -> np.ndarray:
            """(N, 4) feet that landed this step."""
            return contacts & ~self.foot_down

        @functools.cache
        def moving() -> np.ndarray:
            """(N,) robots whose command asks to move (anything but an exact zero)."""
            return np.any(self.command != 0.0, axis=1)

        @functools.cache
        def moving_touchdowns() -> np.ndarray:
            """(N, 4) feet that landed this step while the command asks to move."""
            return touchdowns() & moving()[:, None]

        def feet_air_time() -> np.ndarray:
            lo, hi = w["air_time_range"]
            # The flight, from the control steps that ended with the foot in the air: the
            # contact sample's resolution is one control period either way.
            air = np.minimum(self.air_time, hi) - lo
            return np.sum(moving_touchdowns() * air, axis=1)

        def chatter() -> np.ndarray:
            # Landings after a flight of fewer than MIN_SWING_S of control steps ending in the
            # air, at any command: standing still does not license hopping feet.
            hop = (self.air_time > 0.0) & (self.air_time < MIN_SWING_S - 1e-9)
            return -np.sum(touchdowns() & hop, axis=1).astype(np.float64)

        def foot_slip() -> np.ndarray:
            slip = np.sum(contacts * foot_speed_xy() ** w["foot_slip_exponent"], axis=1)
            gate = w["foot_slip_turn_gate"]
            # Turning without hip abduction is skidding: the faster the turn asked, the less it costs.
            if gate:
                slip = slip * np.clip(1.0 - np.abs(self.command[:, 1]) / gate, 0.0, 1.0)
            return -slip

        def stand_still() -> np.ndarray:
            # Told to stand, every foot should stay put: a foot's speed in any direction costs,
            # so stepping in place (the scripted gait's answer to a zero command) and sliding alike.
            feet = np.sum(np.linalg.norm(sim.foot_velocities(), axis=2), axis=1)
            return -np.where(moving(), 0.0, feet)

        def swing_height() -> np.ndarray:
            target = w["swing_height_target"]
            # The peak over the control steps that ended with the foot in the air, as the gait
            # meter's swing clearance reads it (the sole's highest point per swing).
            short = np.maximum(target - self.swing_peak, 0.0) / target
            return -np.sum(moving_touchdowns() * short**2, axis=1)

        # Each term as a function, called only when weighted: a term at weight 0 (the gait-
        # quality terms and low_g by default) costs nothing; low_g's accelerometer norms over
        # every physics step were 0.4 % of a 64-robot step. Unweighted terms report 0.
        formulas: dict[str, Callable[[], np.ndarray]] = {
            "track_vx": lambda: np.exp(-((avg[:, 0] - self.command[:, 0]) ** 2) / w["track_vx_sigma"] ** 2),
            "track_wz": lambda: np.exp(-((avg[:, 1] - self.command[:, 1]) ** 2) / w["track_wz_sigma"] ** 2),
            "upright": lambda: -np.sum(sim.gravity_body()[:, :2] ** 2, axis=1),
            "lateral_velocity": lambda: -(velocity[:, 1] ** 2),
            "action_rate": lambda: -np.sum((action - prev_action) ** 2, axis=1),
            "energy": lambda: -np.sum(np.abs(sim.joint_torques() * sim.joint_velocities()), axis=1),
            "alive": lambda: np.where(fell, 0.0, 1.0),
            "termination": lambda: -fell.astype(np.float64),
            "foot_slip": foot_slip,
            "touchdown_slip": lambda: -np.sum(touchdowns() * foot_speed_xy() ** 2, axis=1),
            "foot_clearance": lambda: (
                -np.sum(
                    ~contacts
                    * (np.minimum(sim.foot_positions()[:, :, 2] - w["clearance_height"], 0.0) ** 2)
                    * foot_speed_xy(),
                    axis=1,
                )
                / max(w["clearance_height"], 1e-6) ** 2
            ),
            "pose": lambda: -np.sum((sim.joint_positions() - STAND_POSE) ** 2, axis=1),
            "vertical_velocity": lambda: -(sim.base_linear_velocity_world()[:, 2] ** 2),
            "roll_pitch_rate": lambda: -np.sum(sim.base_angular_velocity_body()[:, :2] ** 2, axis=1),
            "low_g": lambda: -np.mean(sim.low_g_trace(), axis=1),
            "feet_air_time": feet_air_time,
            "chatter": chatter,
            "swing_height": swing_height,
            "stand_still": stand_still,
        }
        terms = {
            name: w[name] * formula() if w[name] else np.zeros(self.n) for name, formula in formulas.items()
        }
        # At least one term, so the sum is an array (never sum()'s start value 0).
        return cast(np.ndarray, sum(terms.values())), terms

    def close(self) -> None:
        self.sim.close()


def validate_task_config(cfg: dict[str, Any], control_dt: float) -> None:
    """Raise ValueError naming the first sim/task option whose value makes no sense."""
    if abs(control_dt - CONTROL_DT) > 1e-9:
        raise ValueError(
            f"physics_substeps={cfg['physics_substeps']} gives a {control_dt * 1e3:.1f} ms control "
            f"period; the policy runs at {CONTROL_DT * 1e3:.0f} ms"
        )
    try:
        observation_layout(cfg["obs_history"])
    except ValueError as exc:
        raise ValueError(f"sim config option 'obs_history': {exc}") from None
    check_action_filter_hz(cfg["action_filter_hz"], "sim config option 'action_filter_hz'")
    if cfg["command_mode"] not in COMMAND_MODES:
        raise ValueError(f"command_mode must be one of {COMMAND_MODES}, got {cfg['command_mode']!r}")
    if not cfg["episode_seconds"] > 0:
        raise ValueError(f"episode_seconds must be positive, got {cfg['episode_seconds']}")
    lo, hi = COMMAND_LIMITS["vx"]
    if not lo <= cfg["forward_speed"] <= hi:
        raise ValueError(f"forward_speed must be within [{lo}, {hi}] m/s, got {cfg['forward_speed']}")
    for name, bounds in cfg["command_ranges"].items():
        if name not in COMMAND_LIMITS:
            raise ValueError(f"command_ranges has unknown command '{name}'")
        clo, chi = bounds
        if not COMMAND_LIMITS[name][0] <= clo <= chi <= COMMAND_LIMITS[name][1]:
            raise ValueError(f"command_ranges['{name}'] = {(clo, chi)} is outside {COMMAND_LIMITS[name]}")
    rlo, rhi = cfg["command_resample_s"]
    if not 0 < rlo <= rhi:
        raise ValueError(f"command_resample_s must be (low, high) with 0 < low <= high, got {(rlo, rhi)}")
    special = cfg["command_special"]
    if any(not 0.0 <= p <= 1.0 for p in special.values()) or sum(special.values()) > 1.0:
        raise ValueError(f"command_special probabilities must be in [0, 1] and sum to <= 1, got {special}")
    window = cfg["reward"]["track_window_s"]
    if not CONTROL_DT <= window <= 5.0:
        raise ValueError(f"reward.track_window_s must be between {CONTROL_DT} and 5 s, got {window}")
    air_lo, air_hi = cfg["reward"]["air_time_range"]
    if not 0.0 <= air_lo < air_hi:
        raise ValueError(
            f"reward.air_time_range must be (low, high) with 0 <= low < high s, got {(air_lo, air_hi)}"
        )
    if not cfg["reward"]["foot_slip_turn_gate"] >= 0:
        raise ValueError(
            f"reward.foot_slip_turn_gate must be >= 0 rad/s (0: no gate), got {cfg['reward']['foot_slip_turn_gate']}"
        )
    for name in ("track_vx_sigma", "track_wz_sigma", "swing_height_target", "foot_slip_exponent"):
        if not cfg["reward"][name] > 0:
            raise ValueError(f"reward.{name} must be positive, got {cfg['reward'][name]}")


def _tracks_air_time(weights: Mapping[str, Any]) -> bool:
    """The air-time tracker is kept while a term that reads it is weighted."""
    return bool(weights["feet_air_time"] or weights["chatter"])
