"""PiDog robot facts: the single source of truth (DESIGN.md §3 and §6).

Everything here is plain Python/numpy so the deploy path (Raspberry Pi) can import it.
Units are SI and radians (REP-103); SunFounder degrees appear only in ``servo.py`` helpers
that the hardware driver uses.

Joint angle convention (ours): every leg joint rotates about the body +y axis (left), so a
positive hip angle swings the upper leg from straight down toward the tail, and the knee angle
is 0 when the lower leg is perpendicular to the upper leg (SunFounder's "ruler" pose).
In SunFounder terms ``hip = alpha`` and ``knee = beta - 90°`` *before* their right-side
mirroring, so the same joint angle means the same leg shape on both sides of the robot.
"""

from __future__ import annotations

import numpy as np

# --- joints (DESIGN.md §3) -------------------------------------------------------------------
LEG_NAMES: tuple[str, ...] = ("lf", "rf", "lh", "rh")
"""Legs in SunFounder order: left-front, right-front, left-hind, right-hind."""

JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{part}" for leg in LEG_NAMES for part in ("hip", "knee"))
"""The 8 leg joints in the one order used by sim, learning, ONNX metadata and hardware."""

N_JOINTS: int = len(JOINT_NAMES)
HIP_INDICES: np.ndarray = np.arange(0, N_JOINTS, 2)
KNEE_INDICES: np.ndarray = np.arange(1, N_JOINTS, 2)

# The servos span -90..+90 deg (SunFounder clamps there too). The hind hips stand at 60 deg,
# so the trot's rear-most foot positions need nearly the full range.
JOINT_LOWER: np.ndarray = np.full(N_JOINTS, np.deg2rad(-90.0))
JOINT_UPPER: np.ndarray = np.full(N_JOINTS, np.deg2rad(90.0))

# --- servos (DESIGN.md §6) -------------------------------------------------------------------
LEG_SERVO_CHANNELS: tuple[int, ...] = (2, 3, 7, 8, 0, 1, 10, 11)
"""Robot HAT PWM channel of each joint, in JOINT_NAMES order."""
HEAD_SERVO_CHANNELS: tuple[int, ...] = (4, 6, 5)  # yaw, roll, pitch
TAIL_SERVO_CHANNEL: int = 9

SERVO_SIGNS: np.ndarray = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64)
"""SunFounder mirrors the right legs (odd leg index): servo_deg = sign * our_deg."""

SERVO_MAX_SPEED: float = float(np.deg2rad(428.0))  # rad/s, 0.14 s/60 deg at 4.8 V
# DESIGN.md quotes "roughly 0.2 N*m (unconfirmed)". At SunFounder's stand pose a knee carries
# about 4.9 N x 42 mm = 0.2 N*m statically whenever only a diagonal pair is down (trot), so a
# ~1 kg PiDog with 0.2 N*m servos could not trot at all; in sim the stock trot needs ~0.35 N*m.
# Either the real mass is lower or the servos are stronger: we keep ~1 kg and use 0.35 N*m,
# randomised +-20 %. Revisit with a measured servo.
SERVO_STALL_TORQUE: float = 0.35  # N*m
SERVO_RANGE_DEG: tuple[float, float] = (-90.0, 90.0)
SERVO_PULSE_US: tuple[float, float] = (500.0, 2500.0)
SERVO_PWM_HZ: float = 50.0

# --- geometry (DESIGN.md §6), metres -----------------------------------------------------------
UPPER_LEG_LENGTH: float = 0.042
LOWER_LEG_LENGTH: float = 0.076
BODY_LENGTH: float = 0.117  # hip-to-hip, front to hind
BODY_WIDTH: float = 0.098  # hip-to-hip, left to right
# Link thickness (radii of the model's capsules/spheres, models/pidog.xml): the legs are
# ~1 cm thick, which is what makes a fully folded knee put the foot through the upper leg.
UPPER_LEG_RADIUS: float = 0.006
LOWER_LEG_RADIUS: float = 0.005
FOOT_RADIUS: float = 0.008
TORSO_HALF_WIDTH: float = 0.035  # the legs hang outboard of it: BODY_WIDTH / 2 = 49 mm
NOMINAL_MASS: float = 1.0  # kg incl. battery; not published, public models 0.64-1.28 kg
BATTERY_MASS: float = 0.0908

HIP_POSITIONS: np.ndarray = np.array(
    [
        [+BODY_LENGTH / 2, +BODY_WIDTH / 2, 0.0],  # lf
        [+BODY_LENGTH / 2, -BODY_WIDTH / 2, 0.0],  # rf
        [-BODY_LENGTH / 2, +BODY_WIDTH / 2, 0.0],  # lh
        [-BODY_LENGTH / 2, -BODY_WIDTH / 2, 0.0],  # rh
    ]
)
"""Hip joint positions in the body frame (x forward, y left, z up), LEG_NAMES order."""

# --- poses -----------------------------------------------------------------------------------
STAND_FOOT_FRONT_MM: tuple[float, float] = (-15.0, 95.0)  # SunFounder (y toward tail, z down)
STAND_FOOT_HIND_MM: tuple[float, float] = (5.0, 90.0)

LIE_POSE_SERVO_DEG: tuple[float, ...] = (45, -45, -45, 45, 45, -45, -45, 45)
"""SunFounder's 'lie' pose, in servo degrees (mirrored right side)."""
