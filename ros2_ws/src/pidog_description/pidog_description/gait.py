"""A scripted trot in SunFounder's style: diagonal pairs, foot paths through the leg IK.

Stateless: the caller owns the phase clock (the env, the teleop gait node), so the same code
gives demonstrations in sim and joint commands on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinematics import STAND_FEET, feet_to_joints
from .robot import BODY_WIDTH
from .spec import GAIT_PERIOD_S

# Diagonal pairs move together: LF+RH at phase 0, RF+LH half a cycle later.
LEG_PHASE_OFFSETS: np.ndarray = np.array([0.0, 0.5, 0.5, 0.0])


@dataclass(frozen=True)
class TrotParams:
    period_s: float = GAIT_PERIOD_S
    step_height: float = 0.02  # m, SunFounder's FOOT_STEP_HEIGHT
    max_step_length: float = 0.055  # m per stance phase: keeps the hind hips inside the servo range
    swing_fraction: float = 0.4  # each diagonal pair swings 40 %: brief 4-foot support
    speed_gain: float = 1.0  # nominal foot speed / commanded speed (compensates foot slip)
    # PiDog has no hip abduction: it turns by skid steering, and its feet slip sideways, so the
    # stride difference between the sides must exceed the no-slip geometry to reach a yaw rate.
    turn_gain: float = 3.0


class TrotGait:
    """Foot trajectories for a commanded forward speed ``vx`` (m/s) and yaw rate ``wz`` (rad/s)."""

    def __init__(self, params: TrotParams | None = None) -> None:
        self.params = params or TrotParams()
        if not 0.0 < self.params.swing_fraction < 1.0:
            raise ValueError(f"swing_fraction must be in (0, 1), got {self.params.swing_fraction}")
        if self.params.period_s <= 0:
            raise ValueError(f"period_s must be positive, got {self.params.period_s}")

    def step_lengths(self, vx: float, wz: float) -> np.ndarray:
        """Stance stroke per leg (m, positive = foot moves toward the tail = body moves forward)."""
        p = self.params
        stance_time = p.period_s * (1.0 - p.swing_fraction)
        # Differential steering: the outside legs of a turn stride further.
        side = np.array([+1.0, -1.0, +1.0, -1.0])  # left legs +1
        leg_speed = p.speed_gain * vx - side * p.turn_gain * wz * BODY_WIDTH / 2.0
        return np.clip(leg_speed * stance_time, -p.max_step_length, p.max_step_length)

    def foot_targets(
        self, phase: float, vx: float, wz: float, step_height: float | None = None
    ) -> np.ndarray:
        """Four (y, z) foot targets in metres at gait ``phase`` (cycles)."""
        p = self.params
        height = p.step_height if step_height is None else step_height
        stroke = self.step_lengths(vx, wz)
        feet = STAND_FEET.copy()
        local = np.mod(phase + LEG_PHASE_OFFSETS, 1.0)
        for leg in range(4):
            if local[leg] < p.swing_fraction:  # swing: lift and carry the foot forward
                s = local[leg] / p.swing_fraction
                feet[leg, 0] += 0.5 * stroke[leg] * np.cos(np.pi * s)
                feet[leg, 1] -= height * np.sin(np.pi * s)
            else:  # stance: foot on the ground sweeps back at constant speed
                s = (local[leg] - p.swing_fraction) / (1.0 - p.swing_fraction)
                feet[leg, 0] += stroke[leg] * (s - 0.5)
        return feet

    def joint_targets(
        self, phase: float, vx: float, wz: float, step_height: float | None = None
    ) -> np.ndarray:
        """Joint targets (rad, JOINT_NAMES order) at gait ``phase`` for the command."""
        return feet_to_joints(self.foot_targets(phase, vx, wz, step_height))
