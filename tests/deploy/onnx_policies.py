"""Small, real ONNX policies for the deploy tests, built with onnx.helper (no training needed).

Every model follows the policy contract (input ``obs`` [batch, OBS_DIM] float32, output
``action`` [batch, 8] float32) unless a test deliberately breaks one part of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pidog_description.gait import TrotGait
from pidog_description.spec import ACTION_DIM, OBS_DIM, OBS_SLICES, policy_metadata, target_to_action

OPSET = 17
BATCH = "batch"


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    props = policy_metadata() if metadata is None else metadata
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _io(obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM, in_name: str = "obs", out_name: str = "action"):
    x = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [BATCH, obs_dim])
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [BATCH, action_dim])
    return x, y


def linear_policy(
    path: Path,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    obs_dim: int = OBS_DIM,
    in_name: str = "obs",
    metadata: dict[str, str] | None = None,
) -> Path:
    """action = tanh(obs @ W + b); zero weights by default (always the stand pose)."""
    w = np.zeros((obs_dim, ACTION_DIM), np.float32) if weight is None else np.asarray(weight, np.float32)
    b = np.zeros(ACTION_DIM, np.float32) if bias is None else np.asarray(bias, np.float32)
    x, y = _io(obs_dim=obs_dim, in_name=in_name)
    nodes = [
        helper.make_node("MatMul", [in_name, "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["action"]),
    ]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")]
    return _save(helper.make_graph(nodes, "linear_policy", [x], [y], inits), path, metadata)


def nan_policy(path: Path) -> Path:
    """A policy whose output is NaN for every joint (obs * 0 * inf)."""
    x, y = _io()
    w = np.zeros((OBS_DIM, ACTION_DIM), np.float32)
    nodes = [
        helper.make_node("MatMul", ["obs", "W"], ["zero"]),
        helper.make_node("Mul", ["zero", "inf"], ["action"]),
    ]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(np.inf, np.float32), "inf")]
    return _save(helper.make_graph(nodes, "nan_policy", [x], [y], inits), path, None)


def trot_policy(
    path: Path, vx: float = 0.2, wz: float = 0.0, n_phases: int = 120, sharpness: float = 2000.0
) -> Path:
    """The scripted trot as an ONNX graph: tabulated actions over the gait phase.

    The phase is read from the observation's (sin, cos) clock; kernel weights
    softmax(k * cos(phase - phase_i)) interpolate a table of
    ``target_to_action(TrotGait().joint_targets(phase_i, vx, wz))`` (a MatMul, a Softmax and a
    MatMul: the trot without training).
    """
    gait = TrotGait()
    phases = np.arange(n_phases) / n_phases
    table = np.stack([target_to_action(gait.joint_targets(p, vx, wz)) for p in phases]).astype(np.float32)
    # Picks (sin, cos) out of the observation and projects onto each tabulated phase.
    select = np.zeros((OBS_DIM, n_phases), np.float32)
    sin_i, cos_i = OBS_SLICES["phase"].start, OBS_SLICES["phase"].start + 1
    select[sin_i] = sharpness * np.sin(2 * np.pi * phases)
    select[cos_i] = sharpness * np.cos(2 * np.pi * phases)
    x, y = _io()
    nodes = [
        helper.make_node("MatMul", ["obs", "select"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "table"], ["action"]),
    ]
    inits = [numpy_helper.from_array(select, "select"), numpy_helper.from_array(table, "table")]
    return _save(helper.make_graph(nodes, "trot_policy", [x], [y], inits), path, None)
