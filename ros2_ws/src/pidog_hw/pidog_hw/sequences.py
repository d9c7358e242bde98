"""Safe stand-up and lie-down sequences: joint-space ramps at a slow, fixed joint speed.

Hobby servos report nothing, so at power-up nobody knows where the legs are; the first pulse
moves each servo at its own full speed. The stand-up sequence therefore asks for the lie pose
first (legs folded under the body: if anything goes wrong the robot is already on its belly),
holds it, and only then rises to the stand pose slowly. Lie-down ramps from the current
estimate to the lie pose. Every list holds one target per control tick; the caller still
passes them through the ServoModel, so limits and the servo rate limit apply as always.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.servo import ServoModel

from .servo_backend import ServoBackend

SEQUENCE_SPEED: float = float(np.deg2rad(60.0))  # rad/s: ~1/7 of servo speed, easy to watch and stop
LIE_HOLD_S: float = 0.5


def ramp(start: np.ndarray, goal: np.ndarray, speed: float, dt: float) -> list[np.ndarray]:
    """Targets from ``start`` to ``goal`` with every joint arriving together, none faster than
    ``speed``; the last target is ``goal`` exactly. Empty if already there."""
    if not speed > 0 or not dt > 0:
        raise ValueError(f"ramp needs a positive speed and time step, got speed={speed}, dt={dt}")
    start = np.asarray(start, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    steps = math.ceil(float(np.max(np.abs(goal - start))) / (speed * dt) - 1e-9)
    return [start + (goal - start) * (k / steps) for k in range(1, steps + 1)]


def hold(pose: np.ndarray, seconds: float, dt: float) -> list[np.ndarray]:
    return [np.asarray(pose, dtype=np.float64).copy() for _ in range(max(0, round(seconds / dt)))]


def stand_up(start_estimate: np.ndarray, dt: float, speed: float = SEQUENCE_SPEED) -> list[np.ndarray]:
    """Lie pose, hold, then rise to the stand pose."""
    return [
        *ramp(start_estimate, LIE_POSE, speed, dt),
        *hold(LIE_POSE, LIE_HOLD_S, dt),
        *ramp(LIE_POSE, STAND_POSE, speed, dt),
    ]


def lie_down(start_estimate: np.ndarray, dt: float, speed: float = SEQUENCE_SPEED) -> list[np.ndarray]:
    """Ramp to the lie pose and hold it briefly so the servos get there before pulses stop."""
    return [*ramp(start_estimate, LIE_POSE, speed, dt), *hold(LIE_POSE, LIE_HOLD_S, dt)]


def play(
    backend: ServoBackend,
    targets: list[np.ndarray],
    start: np.ndarray,
    dt: float,
    sleep: Callable[[float], None] = time.sleep,
) -> np.ndarray:
    """Send ``targets`` one per ``dt`` through a ServoModel starting at ``start`` (blocking;
    for the calibration tool and shutdown, where no control loop runs). Returns the final
    pose estimate. Hardware errors propagate: a sequence must not carry on half-applied."""
    model = ServoModel(start)
    for target in targets:
        backend.write_targets(model.step(target, dt))
        sleep(dt)
    return model.position.copy()
