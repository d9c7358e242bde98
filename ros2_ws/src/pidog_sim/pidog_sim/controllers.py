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

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        state = obs["state"] if isinstance(obs, dict) else obs
        sin, cos = state[OBS_SLICES["phase"]]
        phase = (np.arctan2(sin, cos) / (2 * np.pi)) % 1.0
        vx, wz = state[OBS_SLICES["command"]]
        return target_to_action(self.gait.joint_targets(float(phase), float(vx), float(wz))).astype(
            np.float32
        )
