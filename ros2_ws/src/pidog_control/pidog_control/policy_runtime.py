"""Run an exported ``policy.onnx`` on the deploy target: numpy + onnxruntime only.

The ONNX contract (DESIGN.md §5): one input ``obs`` float32 [batch, dim] holding the raw
observation (the normaliser is inside the graph), one output ``action`` float32 [batch, 8] in
[-1, 1], and metadata props that match ``pidog_description.spec.policy_metadata(layout)`` for
the observation layout the policy names (``pidog-obs-v1``: OBS_DIM values; ``pidog-obs-v1h<k>``:
k past frames appended, ``spec.ObservationLayout``), and the cutoff of the action filter the
policy was trained behind (``action_filter_hz``, 0 or absent: none; ``spec.filter_action``).

``OnnxPolicy`` validates all of that at load time, so a node either starts with a policy it
can run or refuses to start with a message saying what is wrong. ``ObservationBuilder`` keeps
the latest sensor values (and, for a layout with a history, the past frames, in a
``spec.FrameHistory`` as the simulator keeps them) and feeds them to ``spec.build_observation``
- the one observation function the env, the bag importer and this runtime share - and runs
the policy's action through its action filter as the simulator does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from pidog_description.spec import (
    ACTION_DIM,
    CONTROL_DT,
    GAIT_PERIOD_S,
    FrameHistory,
    ObservationLayout,
    action_filter_alpha,
    append_past,
    build_observation,
    clip_command,
    filter_action,
    gravity_from_quaternion,
    layout_for_version,
    metadata_action_filter_hz,
    metadata_mismatches,
    observation_frame,
    sanitize_action,
)

INPUT_NAME = "obs"
OUTPUT_NAME = "action"


class PolicyLoadError(ValueError):
    """A policy file that cannot be used; the message says which file and what is wrong."""


class OnnxPolicy:
    """A validated ONNX policy: ``act(obs) -> action`` on the CPU with one intra-op thread.

    One thread because the policy is tiny (an MLP): thread hand-offs would cost more than they
    save, and on the Pi the other cores belong to the drivers and DDS.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        model_bytes = _read_model(self.path)
        self._session = _make_session(self.path, model_bytes)
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        problems = metadata_mismatches(self.metadata)
        if problems:
            raise PolicyLoadError(
                f"policy {self.path} was exported for a different robot description: " + "; ".join(problems)
            )
        # The layout its metadata names (checked above to be one this stack knows, exactly).
        self.layout: ObservationLayout = layout_for_version(self.metadata["obs_layout_version"])
        self.obs_dim = self.layout.dim
        # The action filter it was trained behind (0: none; checked above to be a valid one).
        self.action_filter_hz = metadata_action_filter_hz(self.metadata)
        _check_signature(self.path, self._session, self.obs_dim)
        self._input = np.zeros((1, self.obs_dim), dtype=np.float32)
        _check_runs(self.path, self)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One observation (obs_dim,) -> the raw policy output (ACTION_DIM,), float32.

        The output is returned as the model produced it (possibly non-finite); callers that
        command hardware pass it through ``spec.sanitize_action`` / the safety layer.
        """
        obs = np.asarray(obs)
        if obs.shape != (self.obs_dim,):
            raise ValueError(
                f"observation must have shape ({self.obs_dim},) ({self.layout.version}), got {obs.shape}"
            )
        self._input[0] = obs
        (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: self._input})
        return np.asarray(out, dtype=np.float32).reshape(ACTION_DIM).copy()

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Observations (B, obs_dim) -> raw outputs (B, ACTION_DIM) in one run: many simulated
        robots at once (benchmarks, calibration); the robot itself uses ``act``."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(
                f"observations must have shape (batch, {self.obs_dim}) ({self.layout.version}), got {obs.shape}"
            )
        (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: obs})
        return np.asarray(out, dtype=np.float32).reshape(len(obs), ACTION_DIM)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)


def _read_model(path: str) -> bytes:
    if not os.path.isfile(path):
        raise PolicyLoadError(f"policy file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PolicyLoadError(f"cannot read policy file {path}: {exc}") from exc
    if not data:
        raise PolicyLoadError(f"policy file {path} is empty")
    return data


def _make_session(path: str, model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not ours to show
    try:
        # From the bytes already read, so what was validated is exactly what runs.
        return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad protobufs
        raise PolicyLoadError(f"policy file {path} is not a valid ONNX model: {exc}") from exc


def _check_signature(path: str, session: ort.InferenceSession, obs_dim: int) -> None:
    inputs = session.get_inputs()
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise PolicyLoadError(
            f"policy {path} must have exactly one input named '{INPUT_NAME}', has {[i.name for i in inputs]}"
        )
    _check_tensor(path, "input", inputs[0], obs_dim)
    outputs = {o.name: o for o in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise PolicyLoadError(
            f"policy {path} has no output named '{OUTPUT_NAME}' (outputs: {sorted(outputs)})"
        )
    _check_tensor(path, "output", outputs[OUTPUT_NAME], ACTION_DIM)


def _check_tensor(path: str, role: str, arg, size: int) -> None:
    if arg.type != "tensor(float)":
        raise PolicyLoadError(f"policy {path} {role} '{arg.name}' must be float32, is {arg.type}")
    shape = list(arg.shape)
    last = shape[-1] if shape else None
    # Symbolic dims (strings/None) are allowed for the batch; the feature size must be fixed.
    if len(shape) != 2 or last != size:
        raise PolicyLoadError(
            f"policy {path} {role} '{arg.name}' must have shape [batch, {size}], has {shape}"
        )


def _check_runs(path: str, policy: OnnxPolicy) -> None:
    """Run once on a zero observation: catches graphs whose declared shapes lie."""
    try:
        (out,) = policy._session.run(
            [OUTPUT_NAME], {INPUT_NAME: np.zeros((1, policy.obs_dim), dtype=np.float32)}
        )
    except Exception as exc:
        raise PolicyLoadError(
            f"policy {path} fails to run on a [1, {policy.obs_dim}] observation: {exc}"
        ) from exc
    if np.asarray(out).shape != (1, ACTION_DIM):
        raise PolicyLoadError(
            f"policy {path} returned an action of shape {np.asarray(out).shape}, expected (1, {ACTION_DIM})"
        )


class ObservationBuilder:
    """The policy's view of the robot: latest sensors, command, last action and phase clock.

    Mirrors ``PiDogEnv``: the observation of a tick uses the phase *before* that tick's
    action, and ``advance(action)`` stores the (sanitised) action and moves the clock by
    CONTROL_DT / GAIT_PERIOD_S cycles (one control period). With ``history`` past frames
    (the policy's layout, ``set_history``) the frame each tick observed becomes the past at
    ``advance``, and a (re)started run fills the past with its first frame, as a reset robot
    in the simulator does.
    """

    def __init__(
        self, default_command: Sequence[float] = (0.2, 0.0), history: int = 0, action_filter_hz: float = 0.0
    ) -> None:
        self.command = clip_command(default_command)
        self.frames = FrameHistory(history)
        self.filter_alpha = action_filter_alpha(action_filter_hz)
        self.joint_pos: np.ndarray | None = None
        self.gravity: np.ndarray | None = None
        self.gyro: np.ndarray | None = None
        self.last_action = np.zeros(ACTION_DIM)
        self.phase = 0.0

    def set_joints(self, joint_pos: np.ndarray) -> None:
        self.joint_pos = np.asarray(joint_pos, dtype=np.float64).reshape(ACTION_DIM).copy()

    def set_imu(self, orientation_wxyz: np.ndarray, gyro: np.ndarray) -> None:
        self.gravity = gravity_from_quaternion(orientation_wxyz)
        self.gyro = np.asarray(gyro, dtype=np.float64).reshape(3).copy()

    def set_command(self, vx: float, wz: float) -> None:
        self.command = clip_command([vx, wz])

    def ready(self) -> bool:
        """True once a joint state and an IMU sample have arrived."""
        return self.joint_pos is not None and self.gravity is not None

    def observation(self) -> np.ndarray:
        if not self.ready():
            raise RuntimeError("no observation yet: waiting for /joint_states and /imu/data")
        # ready(); set_imu sets gravity and gyro together.
        assert self.joint_pos is not None and self.gravity is not None and self.gyro is not None
        obs = build_observation(
            gravity_body=self.gravity,
            gyro=self.gyro,
            joint_pos=self.joint_pos,
            last_action=self.last_action,
            phase=self.phase,
            command=self.command,
        )
        if not self.frames.history:
            return obs
        return append_past(obs, self.frames.observe(observation_frame(obs))[0])

    def set_history(self, history: int) -> None:
        """Keep ``history`` past frames from now on (a policy of another layout was loaded):
        the past starts afresh, as at a restart."""
        if history != self.frames.history:
            self.frames = FrameHistory(history)

    def set_action_filter(self, action_filter_hz: float) -> None:
        """Run the action filter a newly loaded policy was trained behind (0: none). Its state,
        the last action, carries over: the robot is where the last action put it."""
        self.filter_alpha = action_filter_alpha(action_filter_hz)

    def advance(self, action: np.ndarray, dt: float = CONTROL_DT) -> np.ndarray:
        """Pass the policy's action through the action filter, store what the robot is to be
        given (the next observation's last action), move the phase clock by ``dt`` seconds, and
        return that executed action."""
        self.last_action = filter_action(self.last_action, sanitize_action(action), self.filter_alpha)
        self.phase = (self.phase + dt / GAIT_PERIOD_S) % 1.0
        self.frames.shift()
        return self.last_action.copy()

    def restart_clock(self) -> None:
        """Start a new episode: phase 0, no previous action, no past (as ``PiDogEnv.reset``)."""
        self.last_action = np.zeros(ACTION_DIM)
        self.phase = 0.0
        self.frames.reset()
