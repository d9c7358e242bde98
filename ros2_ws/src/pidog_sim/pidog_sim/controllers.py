"""Controllers in the policy's action space: callables ``obs -> action``."""

from __future__ import annotations

import numpy as np

from pidog_description.gait import TrotGait, TrotParams
from pidog_description.spec import OBS_SLICES, target_to_action


class TrotController:
    """The scripted SunFounder-style trot, as a pure function of the observation.

    It reads the gait phase clock and the velocity command from the observation, so it can
    label any observation (DAgger-style relabelling) and needs no access to the simulator.
    """

    def __init__(self, params: TrotParams | None = None) -> None:
        self.gait = TrotGait(params)

    def __call__(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """(OBS_DIM,) -> (8,) action, or (k, OBS_DIM) -> (k, 8) for a batch of robots."""
        state = np.asarray(obs["state"] if isinstance(obs, dict) else obs)
        sin, cos = np.moveaxis(state[..., OBS_SLICES["phase"]], -1, 0)
        phase = (np.arctan2(sin, cos) / (2 * np.pi)) % 1.0
        vx, wz = np.moveaxis(state[..., OBS_SLICES["command"]], -1, 0)
        return target_to_action(self.gait.joint_targets(phase, vx, wz)).astype(np.float32)

    def act_batch(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """A batch of robots in one call (``pidog_sim.rollout.batch_actor``: demonstrations,
        evaluation); through ``__call__`` so a subclass's override still sees every call."""
        return self(obs)
