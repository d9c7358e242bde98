"""PiDogEnv: the gymnasium environment (registered as ``PiDog-v0``).

Observation and action follow DESIGN.md §4 and are built by pidog_description's shared
functions, from signals the real robot has. The reward may use privileged sim state.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from pidog_description.spec import (
    ACTION_DIM,
    COMMAND_LIMITS,
    CONTROL_DT,
    GAIT_PERIOD_S,
    OBS_DIM,
    build_observation,
    clip_command,
    gravity_from_quaternion,
    observation_bounds,
    sanitize_action,
    sanitized_action_to_target,
)

from .sim import PiDogSim

CAMERA_SHAPE = (64, 64)
RENDER_SHAPE = (480, 640)
COMMAND_MODES = ("fixed", "sample")


class PiDogEnv(gym.Env):
    """Walk at a commanded forward speed and yaw rate on the randomised simulated PiDog.

    Actions are 8 values in [-1, 1]; non-finite entries are treated as 0 (the stand pose for
    that joint) and values outside [-1, 1] are clipped, so a bad policy output can never
    reach the physics.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1.0 / CONTROL_DT))}

    def __init__(
        self,
        render_mode: str | None = None,
        randomize: bool = True,
        use_camera: bool = False,
        episode_seconds: float | None = None,
        command_mode: str | None = None,
        forward_speed: float | None = None,
        config: dict[str, Any] | None = None,
        model_path: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        overrides = dict(config or {})
        for key, value in (
            ("episode_seconds", episode_seconds),
            ("command_mode", command_mode),
            ("forward_speed", forward_speed),
        ):
            if value is not None:
                overrides[key] = value
        self.sim = PiDogSim(model_path=model_path, randomize=randomize, config=overrides)
        self.cfg = self.sim.config
        self._validate_config()
        self.render_mode = render_mode
        self.use_camera = use_camera
        self.max_steps = int(round(self.cfg["episode_seconds"] / CONTROL_DT))

        state_space = spaces.Box(*observation_bounds(), (OBS_DIM,), np.float32)
        if use_camera:
            self.observation_space = spaces.Dict(
                {"state": state_space, "image": spaces.Box(0, 255, (*CAMERA_SHAPE, 3), np.uint8)}
            )
        else:
            self.observation_space = state_space
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

        self._camera_renderer: mujoco.Renderer | None = None
        self._renderer: mujoco.Renderer | None = None
        self.command = np.zeros(2)
        self.phase = 0.0
        self.last_action = np.zeros(ACTION_DIM)
        self.steps = 0
        self._start_x = 0.0

    def _validate_config(self) -> None:
        cfg = self.cfg
        if abs(self.sim.control_dt - CONTROL_DT) > 1e-9:
            raise ValueError(
                f"physics_substeps={cfg['physics_substeps']} gives a {self.sim.control_dt * 1e3:.1f} ms control "
                f"period; the policy runs at {CONTROL_DT * 1e3:.0f} ms"
            )
        if cfg["command_mode"] not in COMMAND_MODES:
            raise ValueError(f"command_mode must be one of {COMMAND_MODES}, got {cfg['command_mode']!r}")
        if not cfg["episode_seconds"] > 0:
            raise ValueError(f"episode_seconds must be positive, got {cfg['episode_seconds']}")
        lo, hi = COMMAND_LIMITS["vx"]
        if not lo <= cfg["forward_speed"] <= hi:
            raise ValueError(f"forward_speed must be within [{lo}, {hi}] m/s, got {cfg['forward_speed']}")
        for name, (clo, chi) in cfg["command_ranges"].items():
            if name not in COMMAND_LIMITS:
                raise ValueError(f"command_ranges has unknown command '{name}'")
            if not COMMAND_LIMITS[name][0] <= clo <= chi <= COMMAND_LIMITS[name][1]:
                raise ValueError(f"command_ranges['{name}'] = {(clo, chi)} is outside {COMMAND_LIMITS[name]}")

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.sim.reset(self.np_random)
        if "command" in options:
            self.command = clip_command(options["command"])
        elif self.cfg["command_mode"] == "sample":
            ranges = self.cfg["command_ranges"]
            self.command = np.array(
                [self.np_random.uniform(*ranges["vx"]), self.np_random.uniform(*ranges["wz"])]
            )
        else:
            self.command = np.array([self.cfg["forward_speed"], 0.0])
        self.phase = 0.0
        self.last_action = np.zeros(ACTION_DIM)
        self.steps = 0
        self._start_x = float(self.sim.data.qpos[0])
        return self._observation(), self._info(fell=False)

    def step(self, action: np.ndarray):
        action = sanitize_action(action)
        prev_action = self.last_action
        self.sim.step(sanitized_action_to_target(action))
        self.last_action = action
        self.phase = (self.phase + CONTROL_DT / GAIT_PERIOD_S) % 1.0
        self.steps += 1
        fell = self.sim.fallen()
        forward, lateral = self.sim.heading_velocity()
        reward, terms = self._reward(action, prev_action, fell, forward, lateral)
        truncated = self.steps >= self.max_steps and not fell
        info = self._info(fell=fell, forward=forward)
        info["reward_terms"] = terms
        return self._observation(), reward, fell, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.sim.model, *RENDER_SHAPE)
        self._renderer.update_scene(self.sim.data, camera="track")
        return self._renderer.render()

    def close(self) -> None:
        for renderer in (self._renderer, self._camera_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._camera_renderer = None

    # --- internals -------------------------------------------------------------------------
    def _observation(self):
        quat, gyro, _accel = self.sim.imu()
        state = build_observation(
            gravity_body=gravity_from_quaternion(quat),
            gyro=gyro,
            joint_pos=self.sim.joint_estimate(),
            last_action=self.last_action,
            phase=self.phase,
            command=self.command,
        )
        if not self.use_camera:
            return state
        if self._camera_renderer is None:
            self._camera_renderer = mujoco.Renderer(self.sim.model, *CAMERA_SHAPE)
        self._camera_renderer.update_scene(self.sim.data, camera="head_camera")
        return {"state": state, "image": self._camera_renderer.render().copy()}

    def _reward(
        self, action: np.ndarray, prev_action: np.ndarray, fell: bool, vx: float, vy: float
    ) -> tuple[float, dict[str, float]]:
        w = self.cfg["reward"]
        wz = float(self.sim.data.qvel[5])
        gravity = gravity_from_quaternion(self.sim.data.qpos[3:7])
        power = float(np.sum(np.abs(self.sim.data.actuator_force * self.sim.data.qvel[self.sim.dof_idx])))
        terms = {
            "track_vx": w["track_vx"]
            * float(np.exp(-((vx - self.command[0]) ** 2) / w["track_vx_sigma"] ** 2)),
            "track_wz": w["track_wz"]
            * float(np.exp(-((wz - self.command[1]) ** 2) / w["track_wz_sigma"] ** 2)),
            "upright": -w["upright"] * float(gravity[0] ** 2 + gravity[1] ** 2),
            "lateral_velocity": -w["lateral_velocity"] * vy * vy,
            "action_rate": -w["action_rate"] * float(np.sum((action - prev_action) ** 2)),
            "energy": -w["energy"] * power,
            "alive": 0.0 if fell else w["alive"],
        }
        return float(sum(terms.values())), terms

    def _info(self, fell: bool, forward: float | None = None) -> dict[str, Any]:
        if forward is None:
            forward, _lateral = self.sim.heading_velocity()
        return {
            "forward_speed": forward,
            "distance": float(self.sim.data.qpos[0]) - self._start_x,
            "fell": bool(fell),
            "command": self.command.copy(),
        }
