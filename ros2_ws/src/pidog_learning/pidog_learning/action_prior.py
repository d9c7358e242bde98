"""The scripted trot inside the actor: a residual policy over the gait (``policy.action_prior``).

With ``action_prior="trot"`` the actor's mean action is the trot's action for the command and
gait clock the observation carries, plus what the network adds (residual reinforcement learning:
Johannink et al. 2019, Silver et al. 2018). The network then learns a correction to the trot
instead of a whole gait. Measured (docs/ABLATIONS.md, fortieth session): nearer the trot's slip,
and its slow turns; off by default.

The trot is ``pidog_description.gait.TrotGait`` written in torch so it can sit in the actor's
graph: BC, PPO, the mirror and smoothness losses and the ONNX export all see one mean action, and
the robot's policy node runs the file as before. It reads the same parameters and tables as the
numpy gait (``TrotParams``, the stand feet, the hip's lift limit), and
``tests/learning/test_action_prior.py`` holds the two to the same actions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pidog_description.gait import LEG_PHASE_OFFSETS, LEG_SIDES, LIFT_LIMIT_Y, LIFT_LIMIT_Z, TrotParams
from pidog_description.kinematics import STAND_FEET
from pidog_description.robot import BODY_WIDTH, LOWER_LEG_LENGTH, UPPER_LEG_LENGTH
from pidog_description.spec import ACTION_SCALE, OBS_SLICES, STAND_POSE

from .config import ACTION_PRIORS


def _buffer(values: np.ndarray | list[float]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


class TrotPrior(nn.Module):
    """Deployable observations (N, >= layout dim) -> the trot's actions (N, 8) in [-1, 1]."""

    stand_feet: torch.Tensor
    phase_offsets: torch.Tensor
    sides: torch.Tensor
    lift_z: torch.Tensor
    stand_pose: torch.Tensor
    action_scale: torch.Tensor

    def __init__(self, params: TrotParams | None = None) -> None:
        super().__init__()
        self.params = params or TrotParams()
        # Not persistent: the gait is code, not weights, so checkpoints stay as they were.
        for name, value in {
            "stand_feet": STAND_FEET,
            "phase_offsets": LEG_PHASE_OFFSETS,
            "sides": LEG_SIDES,
            "lift_z": LIFT_LIMIT_Z,
            "stand_pose": STAND_POSE,
            "action_scale": ACTION_SCALE,
        }.items():
            self.register_buffer(name, _buffer(value), persistent=False)
        self.lift_y0 = float(LIFT_LIMIT_Y[0])
        self.lift_dy = float(LIFT_LIMIT_Y[1] - LIFT_LIMIT_Y[0])  # a uniform grid (np.linspace)

    def step_lengths(self, vx: torch.Tensor, wz: torch.Tensor) -> torch.Tensor:
        """``TrotGait.step_lengths`` for (N,) commands -> (N, 4)."""
        p = self.params
        vx, wz = vx[:, None], wz[:, None]
        stance_time = p.period_s * (1.0 - p.swing_fraction)
        gain = torch.where(vx >= 0, torch.full_like(vx, p.speed_gain), torch.full_like(vx, p.back_speed_gain))
        forward = vx * gain * stance_time
        turn = torch.clamp(
            p.turn_gain * wz * BODY_WIDTH / 2.0 * stance_time, -p.max_turn_step_length, p.max_turn_step_length
        )
        stroke = forward - self.sides * turn
        caps = torch.where(
            stroke >= 0,
            torch.full_like(stroke, p.max_step_length),
            torch.full_like(stroke, p.max_back_step_length),
        )
        over = torch.amax(torch.abs(stroke) / caps, dim=-1, keepdim=True)
        return stroke / torch.clamp(over, min=1.0)

    def _lift_limit(self, y: torch.Tensor) -> torch.Tensor:
        """``np.interp(y, LIFT_LIMIT_Y, LIFT_LIMIT_Z)``: linear on the uniform grid, held at its ends."""
        n = self.lift_z.shape[0]
        t = torch.clamp((y - self.lift_y0) / self.lift_dy, 0.0, float(n - 1))
        t = torch.where(torch.isnan(t), torch.zeros_like(t), t)  # a valid index for a NaN input
        i0 = torch.clamp(torch.floor(t), max=float(n - 2))
        frac = t - i0
        index = i0.long()
        return self.lift_z[index] * (1.0 - frac) + self.lift_z[index + 1] * frac

    def foot_targets(self, phase: torch.Tensor, vx: torch.Tensor, wz: torch.Tensor) -> torch.Tensor:
        """``TrotGait.foot_targets`` for (N,) phases and commands -> (N, 4, 2)."""
        p = self.params
        stroke = self.step_lengths(vx, wz)
        local = torch.remainder(phase[:, None] + self.phase_offsets, 1.0)
        swing = local < p.swing_fraction
        s_swing = local / p.swing_fraction
        s_stance = (local - p.swing_fraction) / (1.0 - p.swing_fraction)
        stand_y, stand_z = self.stand_feet[:, 0], self.stand_feet[:, 1]
        y = stand_y + torch.where(
            swing, 0.5 * stroke * torch.cos(math.pi * s_swing), stroke * (s_stance - 0.5)
        )
        z_swing = torch.maximum(stand_z - p.step_height * torch.sin(math.pi * s_swing), self._lift_limit(y))
        z = torch.where(swing, z_swing, stand_z.expand_as(z_swing))
        return torch.stack([y, z], dim=-1)

    @staticmethod
    def legs_ik(y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``kinematics.legs_ik`` (hip, knee) for feet the gait keeps within reach."""
        upper, lower = UPPER_LEG_LENGTH, LOWER_LEG_LENGTH
        u2 = y * y + z * z
        u = torch.sqrt(u2)
        beta = torch.acos(torch.clamp((lower**2 + upper**2 - u2) / (2 * lower * upper), -1.0, 1.0))
        cos_a2 = torch.clamp((upper**2 + u2 - lower**2) / (2 * upper * u), -1.0, 1.0)
        hip = torch.atan2(y, z) + torch.acos(cos_a2)
        return hip, beta - math.pi / 2

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        sin = states[:, OBS_SLICES["phase"]][:, 0]
        cos = states[:, OBS_SLICES["phase"]][:, 1]
        # ONNX has no atan2: the exporter divides, so a clock at (0, 0) (a zero observation, as
        # the policy runtime's load check feeds) gives NaN there where torch gives 0.
        angle = torch.atan2(sin, cos)
        angle = torch.where(torch.isnan(angle), torch.zeros_like(angle), angle)
        phase = torch.remainder(angle / (2 * math.pi), 1.0)
        command = states[:, OBS_SLICES["command"]]
        feet = self.foot_targets(phase, command[:, 0], command[:, 1])
        hip, knee = self.legs_ik(feet[..., 0], feet[..., 1])
        target = torch.stack([hip, knee], dim=-1).reshape(states.shape[0], -1)
        return torch.clamp((target - self.stand_pose) / self.action_scale, -1.0, 1.0)


def make_action_prior(name: str) -> TrotPrior | None:
    """The module for ``policy.action_prior`` (None for "none")."""
    if name not in ACTION_PRIORS:
        raise ValueError(f"action_prior must be one of {ACTION_PRIORS}, got {name!r}")
    return TrotPrior() if name == "trot" else None
