"""PiDogEnv: the gymnasium environment (registered as ``PiDog-v0``).

Observation and action follow DESIGN.md §4 and are built by pidog_description's shared
functions, from signals the real robot has. The reward may use privileged sim state.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from pidog_description.spec import ACTION_DIM, CONTROL_DT, clip_command

from .sim import PiDogSim
from .spaces import CAMERA_SHAPE, HeadCamera, action_space, observation_space
from .task import WalkTask

__all__ = ["CAMERA_SHAPE", "PiDogEnv"]
RENDER_SHAPE = (480, 640)


def video_renderer(model: mujoco.MjModel) -> mujoco.Renderer:
    """A RENDER_SHAPE renderer for videos, without multisample anti-aliasing.

    Headless rendering is software GL, where MuJoCo's default 4x multisampling doubles the cost
    of a frame (85 -> 46 ms at 640x480 on 2 cores, osmesa, docs/benchmarks/video.md) for edges
    that are barely smoother; a default training run films 6 videos of 200 frames. The setting is read when the GL
    context is made, so it is lowered only for that and the model (shared with physics and the
    head camera, whose images a camera policy was trained on) keeps its own.
    """
    quality = model.vis.quality
    samples = int(quality.offsamples)
    quality.offsamples = 0
    try:
        return mujoco.Renderer(model, *RENDER_SHAPE)
    finally:
        quality.offsamples = samples


def draw_robot_seed(rng: np.random.Generator) -> int:
    """The seed of an episode's robot, drawn from the episode's generator (``PiDogEnv.reset``:
    its ``np_random``; ``pidog_sim.rollout``: ``default_rng(seed)``, which is what gymnasium
    seeds ``np_random`` with)."""
    return int(rng.integers(0, 2**63 - 1))


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
        **sim_options: Any,
    ) -> None:
        """``config`` and any further keyword (``reward=...``, ``command_ranges=...``) override
        ``pidog_sim.config.DEFAULT_SIM_CONFIG``; an unknown option raises ValueError naming it."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        overrides = {**(config or {}), **sim_options}
        for key, value in (
            ("episode_seconds", episode_seconds),
            ("command_mode", command_mode),
            ("forward_speed", forward_speed),
        ):
            if value is not None:
                overrides[key] = value
        # The batched core with a batch of one: the same code as training's VecEnv.
        self.task = WalkTask(1, randomize=randomize, config=overrides, model_path=model_path, threads=1)
        self.sim = PiDogSim(batch=self.task.sim)
        self.cfg = self.task.cfg
        self.render_mode = render_mode
        self.use_camera = use_camera
        self.max_steps = self.task.max_steps

        self.observation_space = observation_space(use_camera, layout=self.task.layout)
        self.action_space = action_space()
        self._camera: HeadCamera | None = None
        self._renderer: mujoco.Renderer | None = None

    @property
    def command(self) -> np.ndarray:
        return self.task.command[0].copy()

    @property
    def phase(self) -> float:
        return float(self.task.phase[0])

    @property
    def last_action(self) -> np.ndarray:
        return self.task.last_action[0].copy()

    @property
    def steps(self) -> int:
        return int(self.task.steps[0])

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        command = clip_command(options["command"])[None] if "command" in options else None
        self.task.reset(np.array([0]), seeds=np.array([draw_robot_seed(self.np_random)]), commands=command)
        return self._observation(), self._info(fell=False)

    def step(self, action: np.ndarray):
        out = self.task.step(np.asarray(action, dtype=np.float64).reshape(1, ACTION_DIM))
        fell = bool(out["terminated"][0])
        info = self._info(fell=fell, forward=float(out["forward_speed"][0]))
        info["yaw_rate"] = float(out["yaw_rate"][0])
        info["unstable"] = bool(out["unstable"][0])
        info["reward_terms"] = {name: float(value[0]) for name, value in out["terms"].items()}
        return self._observation(), float(out["reward"][0]), fell, bool(out["truncated"][0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = video_renderer(self.sim.model)
        self._renderer.update_scene(self.sim.data, camera="track")
        return self._renderer.render()

    def close(self) -> None:
        for renderer in (self._renderer, self._camera):
            if renderer is not None:
                renderer.close()
        self._renderer = self._camera = None
        self.task.close()

    # --- internals -------------------------------------------------------------------------
    def _observation(self):
        state = self.task.observe()[0]
        if not self.use_camera:
            return state
        if self._camera is None:
            self._camera = HeadCamera(self.task.sim)
        return {"state": state, "image": self._camera.images(np.array([0]))[0]}

    def _info(self, fell: bool, forward: float | None = None) -> dict[str, Any]:
        if forward is None:
            forward = float(self.task.sim.heading_velocity()[0, 0])
        return {
            "forward_speed": forward,
            "distance": float(self.task.distance()[0]),
            "fell": bool(fell),
            "command": self.command,
        }
