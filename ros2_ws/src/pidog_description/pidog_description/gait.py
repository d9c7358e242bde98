"""A steerable scripted trot in SunFounder's style: diagonal pairs, foot paths through the leg IK.

Stateless: the caller owns the phase clock (the env, the teleop gait node), so the same code
gives demonstrations in sim and joint commands on the robot.

Steering without hip abduction is skid steering: every leg strides along the body axis, and a
yaw rate comes from a stroke difference between the left and the right legs. The stroke of each
leg is a forward part (vx) plus a turning part (wz) of opposite sign on the two sides, so

- forward / backward: all four legs stride the same way (backward has its own gain and cap);
- arcs: the outside legs stride further than the inside ones;
- turning in place (vx = 0): the two sides stride in opposite directions.

The gains and caps below were tuned in the MuJoCo model (pidog_sim, nominal and randomised):
with a trot, two diagonal feet carry the robot and both must slip sideways for the body to yaw,
so the achieved yaw rate is only ~10 % of the no-slip geometry and saturates at a stroke
difference of about +-35 mm; longer turning strides slip more without turning faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .kinematics import MAX_REACH, STAND_FEET, feet_to_joints, leg_ik
from .robot import BODY_WIDTH, JOINT_UPPER
from .spec import GAIT_PERIOD_S

# Diagonal pairs move together: LF+RH at phase 0, RF+LH half a cycle later.
LEG_PHASE_OFFSETS: np.ndarray = np.array([0.0, 0.5, 0.5, 0.0])
LEG_SIDES: np.ndarray = np.array([+1.0, -1.0, +1.0, -1.0])
"""+1 for the left legs (lf, lh), -1 for the right legs (rf, rh), LEG_NAMES order."""


# Lifting a foot bends the knee and swings the upper leg toward the tail: at the hind legs'
# stand (hip 60 deg) a 20 mm lift already takes the hip to ~90 deg, the servo's end. Swing feet
# are kept below the highest point whose hip angle stays this far inside the range.
HIP_MARGIN_RAD: float = float(np.deg2rad(2.0))
_HIP_MAX = float(JOINT_UPPER[0]) - HIP_MARGIN_RAD


def _highest_feet(ys: np.ndarray) -> np.ndarray:
    """Smallest z (highest foot, m) per leg-plane y with hip <= _HIP_MAX (bisection on z)."""
    out = np.empty_like(ys)
    for i, y in enumerate(ys):
        lo, hi = 0.04, float(np.sqrt(MAX_REACH**2 - y**2)) - 1e-6  # hip falls as z grows
        if leg_ik(y, lo)[0] <= _HIP_MAX:
            out[i] = lo
            continue
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if leg_ik(y, mid)[0] > _HIP_MAX else (lo, mid)
        out[i] = hi
    return out


LIFT_LIMIT_Y: np.ndarray = np.linspace(-0.06, 0.07, 131)  # every stand foot +- the longest stroke, 1 mm apart
LIFT_LIMIT_Z: np.ndarray = _highest_feet(LIFT_LIMIT_Y)
"""The highest swing foot (z, m) at each foot y of LIFT_LIMIT_Y, linear between (np.interp)."""


@dataclass(frozen=True)
class TrotParams:
    period_s: float = GAIT_PERIOD_S
    step_height: float = 0.02  # m, SunFounder's FOOT_STEP_HEIGHT
    swing_fraction: float = 0.4  # each diagonal pair swings 40 %: brief 4-foot support
    # Stroke caps per stance phase (m). Forward: longer strides stumble and push the knees out
    # of the action range. Backward: beyond ~40 mm the trot stops making progress in sim.
    max_step_length: float = 0.055
    max_back_step_length: float = 0.04
    # Half the left/right stroke difference: past ~35 mm the feet slip more, the yaw rate drops.
    max_turn_step_length: float = 0.035
    # Nominal foot speed / commanded speed. Forward the feet slip (measured ~0.7 efficiency),
    # backward they do not (~1.0), so the same command gives about the same achieved speed.
    speed_gain: float = 1.4
    back_speed_gain: float = 1.0
    # Skid steering: the side-to-side stroke difference must be ~10x the no-slip geometry
    # (wz * BODY_WIDTH / 2 per side) to reach the commanded yaw rate below the ceiling.
    turn_gain: float = 10.0


class TrotGait:
    """Foot trajectories for a commanded forward speed ``vx`` (m/s) and yaw rate ``wz`` (rad/s)."""

    def __init__(self, params: TrotParams | None = None) -> None:
        self.params = params or TrotParams()
        p = self.params
        if not 0.0 < p.swing_fraction < 1.0:
            raise ValueError(f"swing_fraction must be in (0, 1), got {p.swing_fraction}")
        if p.period_s <= 0:
            raise ValueError(f"period_s must be positive, got {p.period_s}")
        for name in ("max_step_length", "max_back_step_length", "max_turn_step_length"):
            if not getattr(p, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(p, name)}")

    def step_lengths(self, vx: ArrayLike, wz: ArrayLike) -> np.ndarray:
        """Stance stroke per leg (m, positive = foot moves toward the tail = body moves forward).

        Scalars give (4,); arrays of commands (a batch of robots) give (..., 4).
        """
        p = self.params
        vx = np.asarray(vx, dtype=np.float64)[..., None]
        wz = np.asarray(wz, dtype=np.float64)[..., None]
        stance_time = p.period_s * (1.0 - p.swing_fraction)
        gain = np.where(vx >= 0, p.speed_gain, p.back_speed_gain)
        forward = vx * gain * stance_time
        turn = np.clip(
            p.turn_gain * wz * BODY_WIDTH / 2.0 * stance_time,
            -p.max_turn_step_length,
            p.max_turn_step_length,
        )
        # Turning left (+wz): the left legs stride less (or backward), the right legs further.
        stroke = forward - LEG_SIDES * turn
        # Where a leg would exceed its cap, shrink all four strokes by the same factor: an arc
        # keeps its curvature (the ratio wz/vx) instead of losing its turn to the clip.
        caps = np.where(stroke >= 0, p.max_step_length, p.max_back_step_length)
        over = np.max(np.abs(stroke) / caps, axis=-1, keepdims=True)
        return stroke / np.maximum(over, 1.0)

    def foot_targets(
        self, phase: ArrayLike, vx: ArrayLike, wz: ArrayLike, step_height: float | None = None
    ) -> np.ndarray:
        """Four (y, z) foot targets in metres at gait ``phase`` (cycles): (4, 2), or (..., 4, 2)
        for arrays of phases and commands."""
        p = self.params
        height = p.step_height if step_height is None else step_height
        stroke = self.step_lengths(vx, wz)
        local = np.mod(np.asarray(phase, dtype=np.float64)[..., None] + LEG_PHASE_OFFSETS, 1.0)
        swing = local < p.swing_fraction
        s_swing = local / p.swing_fraction
        s_stance = (local - p.swing_fraction) / (1.0 - p.swing_fraction)
        # Swing: lift and carry the foot forward, no higher than the hip's range allows there.
        # Stance: the foot on the ground sweeps back at constant speed.
        y = STAND_FEET[:, 0] + np.where(
            swing, 0.5 * stroke * np.cos(np.pi * s_swing), stroke * (s_stance - 0.5)
        )
        z_swing = np.maximum(
            STAND_FEET[:, 1] - height * np.sin(np.pi * s_swing), np.interp(y, LIFT_LIMIT_Y, LIFT_LIMIT_Z)
        )
        z = np.where(swing, z_swing, STAND_FEET[:, 1])
        return np.stack([y, z], axis=-1)

    def joint_targets(
        self, phase: ArrayLike, vx: ArrayLike, wz: ArrayLike, step_height: float | None = None
    ) -> np.ndarray:
        """Joint targets (rad, JOINT_NAMES order) at gait ``phase`` for the command: (8,), or
        (..., 8) for arrays of phases and commands."""
        return feet_to_joints(self.foot_targets(phase, vx, wz, step_height))
