"""What the policy sees, for both faces of the core (PiDogEnv, PiDogVecEnv): the observation
space and the head-camera image."""

from __future__ import annotations

import mujoco
import numpy as np
from gymnasium import spaces

from pidog_description.spec import ACTION_DIM, ObservationLayout, observation_layout

from .batch import BatchSim

CAMERA_SHAPE = (64, 64)


def observation_space(
    use_camera: bool, privileged_dim: int = 0, layout: ObservationLayout | None = None
) -> spaces.Space:
    """The deployable observation of ``layout`` (default ``pidog-obs-v1``; its bounds from the
    spec), optionally followed by ``privileged_dim`` unbounded sim-only values (an asymmetric
    critic's), optionally with the head-camera image."""
    low, high = (layout or observation_layout()).bounds()
    if privileged_dim:
        low = np.concatenate([low, np.full(privileged_dim, -np.inf, np.float32)])
        high = np.concatenate([high, np.full(privileged_dim, np.inf, np.float32)])
    state = spaces.Box(low, high, (len(low),), np.float32)
    if not use_camera:
        return state
    return spaces.Dict({"state": state, "image": spaces.Box(0, 255, (*CAMERA_SHAPE, 3), np.uint8)})


def action_space() -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


class HeadCamera:
    """Renders robots' head cameras. Per robot by nature (one OpenGL scene each): with
    --use-camera, rendering stays the slow part while physics and the rest remain batched."""

    def __init__(self, sim: BatchSim) -> None:
        self.sim = sim
        self._renderer = mujoco.Renderer(sim.models[0], *CAMERA_SHAPE)
        self._data = mujoco.MjData(sim.models[0])

    def images(self, robots: np.ndarray) -> np.ndarray:
        out = np.empty((len(robots), *CAMERA_SHAPE, 3), dtype=np.uint8)
        for row, i in enumerate(robots):
            self.sim.sync_data(int(i), self._data)
            self._renderer.update_scene(self._data, camera="head_camera")
            out[row] = self._renderer.render()
        return out

    def close(self) -> None:
        self._renderer.close()
