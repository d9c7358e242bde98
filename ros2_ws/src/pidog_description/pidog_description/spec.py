"""Observation and action specification (DESIGN.md §4): the one place they are defined.

The env, the rosbag importer and the policy node all build observations with
``build_observation`` and turn actions into joint targets with ``action_to_target``. The
layout is versioned: a policy exported for another layout is refused at load time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .kinematics import STAND_POSE
from .robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, N_JOINTS
from .rotations import up_in_body

CONTROL_HZ: float = 50.0
CONTROL_DT: float = 1.0 / CONTROL_HZ


def seconds_to_steps(seconds: float) -> int:
    """The whole number of control periods nearest ``seconds``."""
    return int(round(seconds / CONTROL_DT))


GAIT_PERIOD_S: float = 0.4
"""Period of the gait phase clock fed to the policy (one full trot cycle)."""

OBS_LAYOUT_VERSION: str = "pidog-obs-v1"

OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("gravity", 3),  # unit gravity direction in the body frame, from the IMU orientation
    ("gyro", 3),  # body angular velocity, rad/s
    ("joint_pos", N_JOINTS),  # servo-model joint estimate minus stand pose, rad
    ("last_action", N_JOINTS),  # previous action in [-1, 1]
    ("phase", 2),  # sin, cos of the gait phase
    ("command", 2),  # commanded forward speed (m/s) and yaw rate (rad/s)
)
OBS_SLICES: dict[str, slice] = {}
_start = 0
for _name, _size in OBS_LAYOUT:
    OBS_SLICES[_name] = slice(_start, _start + _size)
    _start += _size
OBS_DIM: int = _start
del _start, _name, _size

GYRO_RANGE: float = float(np.deg2rad(2000.0))  # rad/s, the SH3001's +-2000 deg/s range

ACTION_DIM: int = N_JOINTS
ACTION_SCALE: np.ndarray = np.full(N_JOINTS, 0.7)
"""Radians of joint travel per unit action around the stand pose (covers the trot)."""

COMMAND_LIMITS: dict[str, tuple[float, float]] = {
    "vx": (-0.15, 0.3),  # m/s; PiDog has no hip abduction, so no lateral command
    "wz": (-1.0, 1.0),  # rad/s
}


CMD_TIMEOUT_S: float = 0.5
"""A /cmd_vel older than this means "stop" (teleop gait node, policy node, bag importer)."""

STANDARD_GRAVITY: float = 9.80665  # m/s^2
FREEFALL_ACCEL_MPS2: float = 3.0
FREEFALL_S: float = 0.1
"""hw_node latches ``lifted`` (free fall) when the IMU's specific force stays below
FREEFALL_ACCEL_MPS2 for FREEFALL_S. A bouncing gait throws the body below the threshold in
short spells: the tracking grid reports how often and how long (pidog_sim.evaluation)."""

LIFT_ACCEL_MPS2: float = 2.5
LIFT_WINDOW_S: float = 0.3
LIFT_QUARTILE: float = 0.5
IMU_READ_HZ: float = 100.0
"""hw_node latches ``lifted`` (picked up) when, over a LIFT_WINDOW_S window of its IMU reads
(IMU_READ_HZ by default), the upward acceleration (specific force along up, minus g) averages
above LIFT_ACCEL_MPS2 and its lower quartile is above LIFT_QUARTILE of that: a hand lifts
smoothly, so nearly every read points up, while a trot's footfall spikes, read at 100 Hz, can
average past the threshold over a window whose lower quartile still points down (measured on
the twin, docs/TWIN.md). The tracking grid runs the same test on the simulated accelerometer."""


def picked_up(upward: np.ndarray, threshold: float = LIFT_ACCEL_MPS2) -> tuple[bool, float, float]:
    """hw_node's lift test on one window of upward accelerations (m/s^2): (lifted, the window's
    mean, its lower quartile)."""
    upward = np.asarray(upward, dtype=np.float64).ravel()
    values = np.sort(upward)
    # np.percentile(values, 25) by its default linear rule, without its ~0.15 ms of dispatch:
    # the tracking grid runs this twice per control step and robot.
    position = 0.25 * (values.size - 1)
    low = int(position)
    high = min(low + 1, values.size - 1)
    quartile = float(values[low] + (values[high] - values[low]) * (position - low))
    mean = float(np.mean(upward))
    return mean > threshold and quartile > LIFT_QUARTILE * threshold, mean, quartile


_COMMAND_LOWER = np.array([COMMAND_LIMITS["vx"][0], COMMAND_LIMITS["wz"][0]])
_COMMAND_UPPER = np.array([COMMAND_LIMITS["vx"][1], COMMAND_LIMITS["wz"][1]])

TELEOP_STEPS: tuple[float, float] = (0.05, 0.25)
"""keyboard_teleop's default change of the command per key press (vx m/s, wz rad/s)."""


def clip_command(command: Sequence[float] | np.ndarray) -> np.ndarray:
    """(vx m/s, wz rad/s) clipped to COMMAND_LIMITS; non-finite entries become 0 (stop)."""
    raw = np.asarray(command, dtype=np.float64).reshape(2)
    return np.clip(np.where(np.isfinite(raw), raw, 0.0), _COMMAND_LOWER, _COMMAND_UPPER)


def teleop_commands(steps: Sequence[float] = TELEOP_STEPS) -> list[tuple[float, float]]:
    """Every (vx, wz) command keyboard_teleop can send with these steps per key press: from
    (0, 0), a step up or down on either axis, clipped to COMMAND_LIMITS, any number of times
    (so where a limit is not a whole number of steps away, the limit and the steps back from it
    count too). With the defaults: 10 x 9 = 90 commands, among them the top forward speed and
    the fastest turns, the commands a user drives the robot with."""
    axes = []
    for step, (lo, hi) in zip(steps, (COMMAND_LIMITS["vx"], COMMAND_LIMITS["wz"]), strict=True):
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"teleop step must be a positive number, got {step}")
        seen, todo = {0.0}, [0.0]
        while todo:
            value = todo.pop()
            for moved in (value - step, value + step):
                moved = round(min(max(moved, lo), hi), 9)  # rounded: no near-duplicates
                if moved not in seen:
                    seen.add(moved)
                    todo.append(moved)
        axes.append(sorted(seen))
    return [(vx, wz) for vx in axes[0] for wz in axes[1]]


def observation_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Per-element (low, high) of the observation: what the sensors and the spec can produce."""
    bounds = {
        "gravity": (-1.0, 1.0),
        "gyro": (-GYRO_RANGE, GYRO_RANGE),
        "joint_pos": (JOINT_LOWER - STAND_POSE, JOINT_UPPER - STAND_POSE),
        "last_action": (-1.0, 1.0),
        "phase": (-1.0, 1.0),
        "command": (_COMMAND_LOWER, _COMMAND_UPPER),
    }
    low = np.empty(OBS_DIM, dtype=np.float32)
    high = np.empty(OBS_DIM, dtype=np.float32)
    for name, (lo, hi) in bounds.items():
        low[OBS_SLICES[name]] = lo
        high[OBS_SLICES[name]] = hi
    return low, high


def gravity_from_quaternion(q_wxyz: np.ndarray) -> np.ndarray:
    """Unit gravity direction in the body frame from a body->world quaternion (w, x, y, z)."""
    return -up_in_body(q_wxyz)  # gravity points down


def roll_pitch_from_gravity(gravity_body: np.ndarray) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Roll and pitch (rad) of the body from its gravity direction (floats, or arrays for a batch)."""
    gx, gy, gz = np.moveaxis(np.asarray(gravity_body, dtype=np.float64), -1, 0)
    roll = np.arctan2(-gy, -gz)
    pitch = np.arctan2(gx, np.hypot(gy, gz))
    if np.ndim(roll) == 0:
        return float(roll), float(pitch)
    return roll, pitch


def phase_features(phase: float | np.ndarray) -> np.ndarray:
    """Phase in cycles [0, 1) -> (sin, cos) clock features (shape (..., 2))."""
    angle = 2.0 * np.pi * np.asarray(phase, dtype=np.float64)
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def build_observation(
    gravity_body: np.ndarray,
    gyro: np.ndarray,
    joint_pos: np.ndarray,
    last_action: np.ndarray,
    phase: float | np.ndarray,
    command: np.ndarray,
) -> np.ndarray:
    """Assemble the policy observation (float32, OBS_DIM) from deployable signals only.

    One robot (vectors, a float phase) or a batch (arrays with a leading batch dimension, a
    phase per robot): the batched simulator and the policy node share this one function.
    """
    joint_pos = np.asarray(joint_pos, dtype=np.float64)
    obs = np.empty((*joint_pos.shape[:-1], OBS_DIM), dtype=np.float32)
    obs[..., OBS_SLICES["gravity"]] = gravity_body
    obs[..., OBS_SLICES["gyro"]] = gyro
    obs[..., OBS_SLICES["joint_pos"]] = joint_pos - STAND_POSE
    obs[..., OBS_SLICES["last_action"]] = last_action
    obs[..., OBS_SLICES["phase"]] = phase_features(phase)
    obs[..., OBS_SLICES["command"]] = command
    return obs


# --- left/right mirror symmetry ---------------------------------------------------------------
# The robot is symmetric about its sagittal (x-z) plane. Reflecting a situation through that
# plane gives another situation the policy should handle with the reflected action: the left
# legs take the right legs' joints (the joint convention gives the same angle the same leg shape
# on both sides, so no sign change), y-components of vectors flip, and rotation rates about x
# and z flip (they are axial vectors). The diagonal pairs LF+RH and RF+LH swap, which is the
# gait clock moved by half a cycle: (sin, cos) -> (-sin, -cos). A left turn becomes a right one.

_OTHER_SIDE = str.maketrans("lr", "rl")  # a leg's first letter is its side (robot.LEG_NAMES)
ACTION_MIRROR_INDEX: np.ndarray = np.array(
    [JOINT_NAMES.index(name[0].translate(_OTHER_SIDE) + name[1:]) for name in JOINT_NAMES], dtype=np.int64
)
"""``mirrored_action = action[ACTION_MIRROR_INDEX]`` (JOINT_NAMES order)."""


def _observation_mirror() -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(OBS_DIM, dtype=np.int64)
    sign = np.ones(OBS_DIM, dtype=np.float32)
    flips = {"gravity": [1], "gyro": [0, 2], "phase": [0, 1], "command": [1]}  # y; x, z; both; wz
    for name, components in flips.items():
        sign[OBS_SLICES[name].start + np.array(components)] = -1.0
    for name in ("joint_pos", "last_action"):
        start = OBS_SLICES[name].start
        index[OBS_SLICES[name]] = start + ACTION_MIRROR_INDEX
    return index, sign


OBS_MIRROR_INDEX, OBS_MIRROR_SIGN = _observation_mirror()
"""``mirrored_obs = obs[..., OBS_MIRROR_INDEX] * OBS_MIRROR_SIGN`` (``pidog_learning.symmetry``
keeps torch copies of these arrays for the PPO loss)."""


def mirror_observation(obs: np.ndarray) -> np.ndarray:
    """The observation of the robot reflected left/right (shape (..., OBS_DIM))."""
    obs = np.asarray(obs)
    if obs.shape[-1] != OBS_DIM:
        raise ValueError(f"observations must have {OBS_DIM} values, got shape {obs.shape}")
    return (obs[..., OBS_MIRROR_INDEX] * OBS_MIRROR_SIGN).astype(obs.dtype, copy=False)


def mirror_action(action: np.ndarray) -> np.ndarray:
    """The action reflected left/right (shape (..., ACTION_DIM))."""
    action = np.asarray(action)
    if action.shape[-1] != ACTION_DIM:
        raise ValueError(f"actions must have {ACTION_DIM} values, got shape {action.shape}")
    return action[..., ACTION_MIRROR_INDEX]


def sanitize_action(action: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1]; non-finite entries become 0 (the stand pose for that joint).

    Shape (ACTION_DIM,) or a batch (..., ACTION_DIM): a bad entry only touches its own robot.
    """
    action = np.asarray(action, dtype=np.float64)
    if action.ndim <= 1:
        action = action.reshape(ACTION_DIM)
    elif action.shape[-1] != ACTION_DIM:
        raise ValueError(f"actions must have {ACTION_DIM} values per robot, got shape {action.shape}")
    finite = np.isfinite(action)
    if not finite.all():
        action = np.where(finite, action, 0.0)
    return np.clip(action, -1.0, 1.0)


def action_to_target(action: np.ndarray) -> np.ndarray:
    """Action in [-1, 1] -> joint target (rad), clipped to joint limits (before rate limit)."""
    return sanitized_action_to_target(sanitize_action(action))


def sanitized_action_to_target(action: np.ndarray) -> np.ndarray:
    """``action_to_target`` for an action that already went through ``sanitize_action``."""
    return np.clip(STAND_POSE + ACTION_SCALE * action, JOINT_LOWER, JOINT_UPPER)


def target_to_action(target: np.ndarray) -> np.ndarray:
    """Joint target (rad) -> the action that commands it, clipped to [-1, 1]."""
    return np.clip((np.asarray(target, dtype=np.float64) - STAND_POSE) / ACTION_SCALE, -1.0, 1.0)


# --- policy metadata (ONNX props), DESIGN.md §5 ---------------------------------------------


def policy_metadata() -> dict[str, str]:
    """The metadata every exported policy carries, as string props."""
    return {
        "joint_names": json.dumps(list(JOINT_NAMES)),
        "obs_layout_version": OBS_LAYOUT_VERSION,
        "obs_layout": json.dumps([list(item) for item in OBS_LAYOUT]),
        "obs_dim": str(OBS_DIM),
        "action_dim": str(ACTION_DIM),
        "control_hz": repr(CONTROL_HZ),
        "gait_period_s": repr(GAIT_PERIOD_S),
        "action_scale": json.dumps(ACTION_SCALE.tolist()),
        "stand_pose": json.dumps(STAND_POSE.tolist()),
    }


def metadata_mismatches(meta: Mapping[str, str]) -> list[str]:
    """Compare a policy's metadata with this robot description; return what differs."""
    expected = policy_metadata()
    problems: list[str] = []
    for key, want in expected.items():
        got = meta.get(key)
        if got is None:
            problems.append(f"missing metadata '{key}'")
            continue
        if key in ("action_scale", "stand_pose"):
            try:
                same = np.allclose(json.loads(got), json.loads(want), atol=1e-6)
            except (ValueError, TypeError):
                same = False
        elif key in ("control_hz", "gait_period_s"):
            try:
                same = abs(float(got) - float(want)) < 1e-9
            except ValueError:
                same = False
        else:
            same = got == want
        if not same:
            problems.append(f"'{key}': policy has {got!r}, this robot expects {want!r}")
    return problems
