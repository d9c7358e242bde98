"""Loading and running exported policies: the ONNX contract and the observation builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_policies import linear_policy, nan_policy, trot_policy

from pidog_control.policy_runtime import ObservationBuilder, OnnxPolicy, PolicyLoadError
from pidog_description.gait import TrotGait
from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.spec import (
    CONTROL_DT,
    GAIT_PERIOD_S,
    OBS_DIM,
    OBS_SLICES,
    build_observation,
    clip_command,
    gravity_from_quaternion,
    policy_metadata,
    target_to_action,
)

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])


def test_policy_runs_and_carries_metadata(tmp_path: Path) -> None:
    weight = np.zeros((OBS_DIM, 8), np.float32)
    weight[OBS_SLICES["command"].start, :] = 2.0  # action = tanh(2 * vx)
    policy = OnnxPolicy(linear_policy(tmp_path / "p.onnx", weight))
    obs = np.zeros(OBS_DIM, np.float32)
    obs[OBS_SLICES["command"].start] = 0.25
    action = policy.act(obs)
    assert action.shape == (8,) and action.dtype == np.float32
    np.testing.assert_allclose(action, np.tanh(0.5), rtol=1e-5)
    assert policy.metadata["obs_layout_version"] == policy_metadata()["obs_layout_version"]
    with pytest.raises(ValueError, match=f"shape \\({OBS_DIM},\\)"):
        policy.act(np.zeros(OBS_DIM - 1, np.float32))


def test_metadata_mismatch_is_refused_naming_the_difference(tmp_path: Path) -> None:
    meta = policy_metadata()
    meta["action_scale"] = "[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]"
    del meta["joint_names"]
    with pytest.raises(PolicyLoadError) as err:
        OnnxPolicy(linear_policy(tmp_path / "p.onnx", metadata=meta))
    assert "'action_scale'" in str(err.value) and "joint_names" in str(err.value)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b"\x08\x07 not a protobuf " * 20), "not a valid ONNX model"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: linear_policy(p, obs_dim=OBS_DIM - 2), f"shape \\[batch, {OBS_DIM}\\]"),
        (lambda p: linear_policy(p, in_name="observation"), "one input named 'obs'"),
        (lambda p: None, "not found"),
    ],
    ids=["corrupt", "empty", "wrong-input-size", "wrong-input-name", "missing"],
)
def test_bad_policy_files_are_refused(tmp_path: Path, make, expected: str) -> None:
    path = tmp_path / "policy.onnx"
    make(path)
    with pytest.raises(PolicyLoadError, match=expected):
        OnnxPolicy(path)


def test_nan_policy_loads_and_its_output_is_reported_as_is(tmp_path: Path) -> None:
    # The runtime must not hide a broken policy: the node's safety layer decides what to do.
    policy = OnnxPolicy(nan_policy(tmp_path / "nan.onnx"))
    assert np.isnan(policy.act(np.zeros(OBS_DIM, np.float32))).all()


def test_observation_builder_matches_the_shared_function_and_env_clock() -> None:
    builder = ObservationBuilder(default_command=(0.2, 0.0))
    assert not builder.ready()
    q = LIE_POSE.copy()
    quat = np.array([np.cos(0.1), np.sin(0.1), 0.0, 0.0])  # 0.2 rad roll
    builder.set_joints(q)
    builder.set_imu(quat, np.array([0.1, -0.2, 0.3]))
    action = np.linspace(-1, 1, 8)
    builder.advance(action)
    builder.advance(np.full(8, np.nan))  # non-finite entries are stored sanitised, as in the env
    expected = build_observation(
        gravity_body=gravity_from_quaternion(quat),
        gyro=np.array([0.1, -0.2, 0.3]),
        joint_pos=q,
        last_action=np.zeros(8),
        phase=2 * CONTROL_DT / GAIT_PERIOD_S,
        command=np.array([0.2, 0.0]),
    )
    np.testing.assert_allclose(builder.observation(), expected, atol=1e-6)
    builder.restart_clock()
    assert builder.phase == 0.0 and not builder.last_action.any()


def test_commands_are_clipped_to_the_specified_limits() -> None:
    np.testing.assert_allclose(clip_command([5.0, -3.0]), [0.3, -1.0])
    np.testing.assert_allclose(clip_command([float("nan"), 0.5]), [0.0, 0.5])


def test_tabulated_trot_policy_reproduces_the_scripted_trot(tmp_path: Path) -> None:
    """The e2e test's walking policy is only meaningful if it really is the trot."""
    policy = OnnxPolicy(trot_policy(tmp_path / "trot.onnx"))
    builder = ObservationBuilder(default_command=(0.2, 0.0))
    builder.set_joints(STAND_POSE)
    builder.set_imu(LEVEL, np.zeros(3))
    gait = TrotGait()
    for _ in range(int(GAIT_PERIOD_S / CONTROL_DT)):
        action = policy.act(builder.observation())
        np.testing.assert_allclose(
            action, target_to_action(gait.joint_targets(builder.phase, 0.2, 0.0)), atol=0.02
        )
        builder.advance(action)
