"""Observation and action specification (DESIGN.md §4): the one place they are defined.

The env, the rosbag importer and the policy node all build observations with
``build_observation`` and turn actions into joint targets with ``action_to_target``. The
layout is versioned: a policy exported for another layout is refused at load time. Layouts
differ only in how many past frames follow the present values (``ObservationLayout``,
``observation_layout(history)``; ``pidog-obs-v1`` has none), and ``FrameHistory`` is the one
keeper of those frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

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

OBS_FRAME: tuple[tuple[str, int], ...] = (
    ("gravity", 3),  # unit gravity direction in the body frame, from the IMU orientation
    ("gyro", 3),  # body angular velocity, rad/s
    ("joint_pos", N_JOINTS),  # servo-model joint estimate minus stand pose, rad
    ("last_action", N_JOINTS),  # previous action in [-1, 1]
)
"""What one control step's sensors and action give: the part of the observation that an
observation history repeats for the steps before (``ObservationLayout``)."""
FRAME_DIM: int = sum(size for _, size in OBS_FRAME)
MAX_OBS_HISTORY: int = 10
_BASE_VERSION = "pidog-obs-v1"


@dataclass(frozen=True, eq=False)
class ObservationLayout:
    """One observation layout: the present frame (``OBS_FRAME``), the gait clock and the
    command, then ``history`` past frames, most recent first (``gravity_1`` ... for the step
    before, ``gravity_2`` ... for the one before that). The present values sit at the same
    indices in every layout, so ``OBS_SLICES["command"]`` reads any of them. Built by
    ``observation_layout``; a policy names its layout by ``version``."""

    history: int
    version: str
    items: tuple[tuple[str, int], ...]
    slices: Mapping[str, slice]
    dim: int
    mirror_index: np.ndarray  # mirrored = obs[..., mirror_index] * mirror_sign
    mirror_sign: np.ndarray

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        # One instance per history (compared with `is`): copies and pickles give it back.
        return observation_layout, (self.history,)

    @property
    def past(self) -> slice:
        """The past frames' values (history x FRAME_DIM, most recent first)."""
        return slice(self.dim - self.history * FRAME_DIM, self.dim)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-element (low, high): what the sensors and the spec can produce."""
        bounds = {
            "gravity": (-1.0, 1.0),
            "gyro": (-GYRO_RANGE, GYRO_RANGE),
            "joint_pos": (JOINT_LOWER - STAND_POSE, JOINT_UPPER - STAND_POSE),
            "last_action": (-1.0, 1.0),
            "phase": (-1.0, 1.0),
            "command": (_COMMAND_LOWER, _COMMAND_UPPER),
        }
        low = np.empty(self.dim, dtype=np.float32)
        high = np.empty(self.dim, dtype=np.float32)
        for name, _ in self.items:
            lo, hi = bounds[_frame_name(name)]
            low[self.slices[name]] = lo
            high[self.slices[name]] = hi
        return low, high

    def mirror(self, obs: np.ndarray) -> np.ndarray:
        """The observation of the robot reflected left/right (shape (..., dim))."""
        obs = np.asarray(obs)
        if obs.shape[-1] != self.dim:
            raise ValueError(
                f"observations of layout {self.version!r} must have {self.dim} values, got shape {obs.shape}"
            )
        return (obs[..., self.mirror_index] * self.mirror_sign).astype(obs.dtype, copy=False)


def _frame_name(name: str) -> str:
    """'gyro_2' -> 'gyro': the present quantity a past frame's entry repeats."""
    base, _, k = name.rpartition("_")
    return base if k.isdigit() else name


def observation_layout(history: int = 0) -> ObservationLayout:
    """The layout with ``history`` past frames (0: ``pidog-obs-v1``, the shipped policy's)."""
    if (
        isinstance(history, bool)
        or not isinstance(history, int | np.integer)
        or not 0 <= history <= MAX_OBS_HISTORY
    ):
        raise ValueError(
            f"observation history must be a whole number of steps in [0, {MAX_OBS_HISTORY}], got {history!r}"
        )
    return _LAYOUTS[int(history)]


def layout_for_version(version: str) -> ObservationLayout:
    """The layout a policy's ``obs_layout_version`` names (``pidog-obs-v1``, ``pidog-obs-v1h2``)."""
    for layout in _LAYOUTS:
        if layout.version == version:
            return layout
    raise ValueError(
        f"unknown observation layout {version!r}: this stack knows {_BASE_VERSION!r} and "
        f"{_BASE_VERSION}h1 ... h{MAX_OBS_HISTORY} (a past frame count)"
    )


def layout_for_dim(dim: int) -> ObservationLayout:
    """The layout whose observations have ``dim`` values (OBS_DIM + k x FRAME_DIM)."""
    past, extra = divmod(int(dim) - OBS_DIM, FRAME_DIM)
    if extra or not 0 <= past <= MAX_OBS_HISTORY:
        raise ValueError(
            f"observations must have {OBS_DIM} values plus {FRAME_DIM} per past frame "
            f"(at most {MAX_OBS_HISTORY}), got {dim}"
        )
    return _LAYOUTS[past]


def _build_layout(history: int) -> ObservationLayout:
    items = (
        *OBS_FRAME,
        ("phase", 2),  # sin, cos of the gait phase
        ("command", 2),  # commanded forward speed (m/s) and yaw rate (rad/s)
        *((f"{name}_{k}", size) for k in range(1, history + 1) for name, size in OBS_FRAME),
    )
    slices: dict[str, slice] = {}
    start = 0
    for name, size in items:
        slices[name] = slice(start, start + size)
        start += size
    # Left/right mirror (see "left/right mirror symmetry" below): y components and x, z rates
    # flip, the clock moves half a cycle, wz flips, and the legs swap sides - in every frame.
    index = np.arange(start, dtype=np.int64)
    sign = np.ones(start, dtype=np.float32)
    flips = {"gravity": [1], "gyro": [0, 2], "phase": [0, 1], "command": [1]}  # y; x, z; both; wz
    for name, _ in items:
        present = _frame_name(name)
        if present in flips:
            sign[slices[name].start + np.array(flips[present])] = -1.0
        elif present in ("joint_pos", "last_action"):
            index[slices[name]] = slices[name].start + ACTION_MIRROR_INDEX
    return ObservationLayout(
        history=history,
        version=_BASE_VERSION if history == 0 else f"{_BASE_VERSION}h{history}",
        items=items,
        slices=MappingProxyType(slices),
        dim=start,
        mirror_index=index,
        mirror_sign=sign,
    )


class FrameHistory:
    """The past observation frames of ``n`` robots, kept at the control rate, for a layout
    with ``history`` of them: the simulator's (batched), the policy node's and the bag
    importer's (one robot), so they cannot disagree on what "the step before" means.

    Once per control step, before the step's observation: ``shift()`` (the frame observed
    last becomes the most recent past one). Each observation: ``observe(frames)`` records the
    present frames and returns the past ones to append. A robot just (re)started has no past:
    its first frame stands in for all of them, as if it had been standing still.
    """

    def __init__(self, history: int, n: int = 1) -> None:
        self.history = observation_layout(history).history
        self.n = int(n)
        # float32, as the observations the frames come from and go back into.
        self._last = np.zeros((self.n, FRAME_DIM), dtype=np.float32)
        self._past = np.zeros((self.n, self.history, FRAME_DIM), dtype=np.float32)
        self._fresh = np.ones(self.n, dtype=bool)

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Forget the past of ``rows`` (default all): their next frame fills it."""
        self._fresh[slice(None) if rows is None else rows] = True

    def shift(self) -> None:
        if self.history:
            self._past[:, 1:] = self._past[:, :-1]
            self._past[:, 0] = self._last

    def observe(self, frames: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Record ``frames`` (k, FRAME_DIM), the present of ``rows`` (default all), and return
        their past (k, history, FRAME_DIM), most recent first."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        self._last[rows] = np.reshape(frames, (rows.size, FRAME_DIM))
        fresh = rows[self._fresh[rows]]
        if fresh.size:
            self._past[fresh] = self._last[fresh, None, :]
            self._fresh[fresh] = False
        return self._past[rows]  # indexing with an array copies: the caller's to keep


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
    past: np.ndarray | None = None,
) -> np.ndarray:
    """Assemble the policy observation (float32) from deployable signals only.

    One robot (vectors, a float phase) or a batch (arrays with a leading batch dimension, a
    phase per robot): the batched simulator and the policy node share this one function.
    ``past``: the past frames (..., history, FRAME_DIM) from a ``FrameHistory``, appended by
    ``append_past``; None for ``pidog-obs-v1`` (OBS_DIM values).
    """
    joint_pos = np.asarray(joint_pos, dtype=np.float64)
    obs = np.empty((*joint_pos.shape[:-1], OBS_DIM), dtype=np.float32)
    obs[..., OBS_SLICES["gravity"]] = gravity_body
    obs[..., OBS_SLICES["gyro"]] = gyro
    obs[..., OBS_SLICES["joint_pos"]] = joint_pos - STAND_POSE
    obs[..., OBS_SLICES["last_action"]] = last_action
    obs[..., OBS_SLICES["phase"]] = phase_features(phase)
    obs[..., OBS_SLICES["command"]] = command
    return obs if past is None else append_past(obs, past)


def observation_frame(obs: np.ndarray) -> np.ndarray:
    """The present frame of observations (..., dim) of any layout: what a ``FrameHistory`` keeps."""
    return np.asarray(obs)[..., :FRAME_DIM]


def append_past(obs: np.ndarray, past: np.ndarray) -> np.ndarray:
    """``pidog-obs-v1`` observations (..., OBS_DIM) with their past frames (..., history,
    FRAME_DIM), most recent first, appended: the layout with that history (float32)."""
    obs = np.asarray(obs, dtype=np.float32)
    past = np.asarray(past, dtype=np.float32)
    if obs.shape[-1] != OBS_DIM or past.shape[-1:] != (FRAME_DIM,) or past.shape[:-2] != obs.shape[:-1]:
        raise ValueError(
            f"observations (..., {OBS_DIM}) and past frames (..., history, {FRAME_DIM}) of the same "
            f"robots expected, got {obs.shape} and {past.shape}"
        )
    return np.concatenate([obs, past.reshape(*obs.shape[:-1], -1)], axis=-1)


def with_history(observations: np.ndarray, episode_starts: np.ndarray, history: int) -> np.ndarray:
    """A recorded sequence of ``pidog-obs-v1`` observations (N, OBS_DIM), one per control step,
    with the past frames of the layout with ``history`` appended, each episode (``episode_starts``
    True at its first step) starting with no past: the frames the simulator and the policy node
    would have kept (``FrameHistory``). The bag importer's way to any layout."""
    observations = np.asarray(observations, dtype=np.float32)
    frames = FrameHistory(history)
    if not frames.history:
        return observations
    rows = []
    for obs, start in zip(observations, np.asarray(episode_starts, dtype=bool), strict=True):
        frames.shift()
        if start:
            frames.reset()
        rows.append(append_past(obs, frames.observe(observation_frame(obs))[0]))
    return np.stack(rows) if rows else np.zeros((0, observation_layout(history).dim), np.float32)


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


_LAYOUTS: tuple[ObservationLayout, ...] = tuple(_build_layout(k) for k in range(MAX_OBS_HISTORY + 1))
_V1 = _LAYOUTS[0]
OBS_LAYOUT_VERSION: str = _V1.version
OBS_LAYOUT: tuple[tuple[str, int], ...] = _V1.items
OBS_SLICES: Mapping[str, slice] = _V1.slices
"""Slices of the present values: the same in every layout (the past frames come after)."""
OBS_DIM: int = _V1.dim
OBS_MIRROR_INDEX, OBS_MIRROR_SIGN = _V1.mirror_index, _V1.mirror_sign
"""``mirrored_obs = obs[..., OBS_MIRROR_INDEX] * OBS_MIRROR_SIGN`` for ``pidog-obs-v1``; every
layout carries its own (``ObservationLayout.mirror_index``)."""


def mirror_observation(obs: np.ndarray) -> np.ndarray:
    """The observation of the robot reflected left/right (shape (..., dim) of any layout)."""
    obs = np.asarray(obs)
    return layout_for_dim(obs.shape[-1] if obs.ndim else -1).mirror(obs)


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


# --- action filter --------------------------------------------------------------------------
# The executed action can pass a first-order low-pass: executed = alpha x the previous executed
# action + (1 - alpha) x the policy's (sanitised) output, alpha = exp(-2 pi f_c dt). Its state is
# the observation's last action, so a policy sees the filter's state and stays Markov. The
# simulator (pidog_sim.task) and the policy node (pidog_control.policy_runtime) both run
# ``filter_action``; an exported policy names its cutoff in its metadata (ACTION_FILTER_KEY).
ACTION_FILTER_KEY = "action_filter_hz"
ACTION_FILTER_MAX_HZ: float = CONTROL_HZ / 2.0  # Nyquist: above it the filter means nothing


def check_action_filter_hz(cutoff_hz: Any, what: str = "action_filter_hz") -> float:
    """``cutoff_hz`` (a number) as a float if it is 0 (no filter) or within
    (0, ACTION_FILTER_MAX_HZ) Hz; else ValueError naming ``what``."""
    number = isinstance(cutoff_hz, int | float | np.integer | np.floating) and not isinstance(cutoff_hz, bool)
    value = float(cutoff_hz) if number else math.nan
    if not (value == 0.0 or 0.0 < value < ACTION_FILTER_MAX_HZ):
        raise _not_a_cutoff(what, cutoff_hz)
    return value


def _not_a_cutoff(what: str, got: Any) -> ValueError:
    return ValueError(
        f"{what} must be 0 (no filter) or a cutoff in (0, {ACTION_FILTER_MAX_HZ:g}) Hz, got {got!r}"
    )


def action_filter_alpha(cutoff_hz: float) -> float:
    """The previous executed action's weight per control period for a cutoff (Hz); 0: no filter."""
    cutoff = check_action_filter_hz(cutoff_hz)
    return math.exp(-2.0 * math.pi * cutoff * CONTROL_DT) if cutoff else 0.0


def filter_action(previous: np.ndarray, action: np.ndarray, alpha: float) -> np.ndarray:
    """The action executed this period: ``action`` (sanitised) low-passed against the
    ``previous`` executed one (shape (ACTION_DIM,) or a batch); ``action`` itself at alpha 0.
    A convex combination, so it stays within [-1, 1]."""
    if not alpha:
        return action
    return alpha * np.asarray(previous, dtype=np.float64) + (1.0 - alpha) * action


def unfilter_action(previous: np.ndarray, executed: np.ndarray, alpha: float) -> np.ndarray:
    """The action that ``filter_action`` turns, from ``previous``, into ``executed`` (its
    inverse): a BC label for a policy trained behind the filter, from demonstrations that record
    what was executed. It may lie outside [-1, 1] where the filter cannot follow that fast; the
    caller clips it (``sanitize_action``) and may count where. ``executed`` itself at alpha 0."""
    executed = np.asarray(executed, dtype=np.float64)
    if not alpha:
        return executed
    return (executed - alpha * np.asarray(previous, dtype=np.float64)) / (1.0 - alpha)


def target_to_action(target: np.ndarray) -> np.ndarray:
    """Joint target (rad) -> the action that commands it, clipped to [-1, 1]."""
    return np.clip((np.asarray(target, dtype=np.float64) - STAND_POSE) / ACTION_SCALE, -1.0, 1.0)


# --- policy metadata (ONNX props), DESIGN.md §5 ---------------------------------------------


def policy_metadata(layout: ObservationLayout | None = None, action_filter_hz: float = 0.0) -> dict[str, str]:
    """The metadata every exported policy carries, as string props (``layout``: its
    observation layout, default ``pidog-obs-v1``; ``action_filter_hz``: the cutoff of the
    action filter it was trained behind, 0 for none)."""
    layout = layout or _V1
    return {
        ACTION_FILTER_KEY: repr(check_action_filter_hz(action_filter_hz)),
        "joint_names": json.dumps(list(JOINT_NAMES)),
        "obs_layout_version": layout.version,
        "obs_layout": json.dumps([list(item) for item in layout.items]),
        "obs_dim": str(layout.dim),
        "action_dim": str(ACTION_DIM),
        "control_hz": repr(CONTROL_HZ),
        "gait_period_s": repr(GAIT_PERIOD_S),
        "action_scale": json.dumps(ACTION_SCALE.tolist()),
        "stand_pose": json.dumps(STAND_POSE.tolist()),
    }


def metadata_action_filter_hz(meta: Mapping[str, str]) -> float:
    """The action filter cutoff a policy's metadata names; 0 for a policy exported before
    policies named one (none of them had a filter). ValueError for a value that is not one."""
    if ACTION_FILTER_KEY not in meta:
        return 0.0
    text, what = meta[ACTION_FILTER_KEY], f"metadata '{ACTION_FILTER_KEY}'"
    try:
        return check_action_filter_hz(float(text), what)
    except (TypeError, ValueError):
        raise _not_a_cutoff(what, text) from None  # the text as the file has it


def metadata_mismatches(meta: Mapping[str, str]) -> list[str]:
    """Compare a policy's metadata with this robot description; return what differs. Any
    layout this stack knows is accepted (its version decides which), but it must be that
    layout exactly."""
    try:
        layout = layout_for_version(meta.get("obs_layout_version", ""))
    except ValueError:
        layout = _V1  # reported below as a version mismatch
    expected = policy_metadata(layout)
    problems: list[str] = []
    try:
        metadata_action_filter_hz(meta)
    except ValueError as exc:
        problems.append(str(exc))
    for key, want in expected.items():
        got = meta.get(key)
        if key == ACTION_FILTER_KEY:  # any valid cutoff; checked above
            continue
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
