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
    observation_layout,
    policy_metadata,
    seconds_to_steps,
    target_to_action,
    with_history,
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


def test_a_policy_names_the_action_filter_it_was_trained_behind(tmp_path: Path) -> None:
    """``action_filter_hz`` in the metadata: read as the policy's cutoff; absent (a policy exported
    before policies named one) it means none; a value that is no cutoff is
    refused by name at load time."""
    filtered = OnnxPolicy(linear_policy(tmp_path / "f.onnx", metadata=policy_metadata(action_filter_hz=6.0)))
    assert filtered.action_filter_hz == 6.0
    old = policy_metadata()
    del old["action_filter_hz"]
    assert OnnxPolicy(linear_policy(tmp_path / "old.onnx", metadata=old)).action_filter_hz == 0.0
    for bad in ("30", "-1", "nan", "six"):
        meta = {**policy_metadata(), "action_filter_hz": bad}
        with pytest.raises(PolicyLoadError, match=f"metadata 'action_filter_hz' must be 0 .*got '{bad}'"):
            OnnxPolicy(linear_policy(tmp_path / "bad.onnx", metadata=meta))


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
    for _ in range(seconds_to_steps(GAIT_PERIOD_S)):
        action = policy.act(builder.observation())
        np.testing.assert_allclose(
            action, target_to_action(gait.joint_targets(builder.phase, 0.2, 0.0)), atol=0.02
        )
        builder.advance(action)


def test_a_history_policy_loads_by_its_layout_and_the_builder_keeps_its_past(tmp_path: Path) -> None:
    """A policy exported with env.obs_history = 2 names pidog-obs-v1h2; the runtime takes 70
    values for it, and the builder appends the frames of the ticks before, as the simulator
    does (``spec.with_history``), forgetting them when a run restarts."""
    h2 = observation_layout(2)
    weight = np.zeros((h2.dim, 8), np.float32)
    weight[h2.slices["gyro_1"].start, :] = 1.0  # action = tanh(the gyro x one tick before)
    policy = OnnxPolicy(
        linear_policy(tmp_path / "h2.onnx", weight, obs_dim=h2.dim, metadata=policy_metadata(h2))
    )
    assert policy.layout is h2 and policy.obs_dim == 70
    with pytest.raises(ValueError, match=r"shape \(70,\) \(pidog-obs-v1h2\)"):
        policy.act(np.zeros(OBS_DIM, np.float32))
    # A v1h2 graph that claims to be v1 is refused (its input is not [batch, 26]).
    with pytest.raises(PolicyLoadError, match=f"shape \\[batch, {OBS_DIM}\\]"):
        OnnxPolicy(linear_policy(tmp_path / "liar.onnx", weight, obs_dim=h2.dim))

    rng = np.random.default_rng(2)
    builder, plain = ObservationBuilder(history=2), ObservationBuilder()
    observed, plain_observed, starts = [], [], []
    for tick in range(9):
        if tick == 5:  # the node's safety layer stops and restarts the policy run
            builder.restart_clock()
            plain.restart_clock()
        q = STAND_POSE + rng.normal(0, 0.1, 8)
        quat = np.array([1.0, *rng.normal(0, 0.05, 3)])
        gyro = rng.normal(0, 0.5, 3)
        for b in (builder, plain):
            b.set_joints(q)
            b.set_imu(quat / np.linalg.norm(quat), gyro)
        observed.append(builder.observation())
        plain_observed.append(plain.observation())
        starts.append(tick in (0, 5))
        action = np.tanh(policy.act(observed[-1]))
        builder.advance(action)
        plain.advance(action)
    np.testing.assert_allclose(
        np.array(observed), with_history(np.array(plain_observed), np.array(starts), 2)
    )
    assert observed[3][h2.slices["gyro_1"]] == pytest.approx(observed[2][OBS_SLICES["gyro"]])
    builder.set_history(0)  # a v1 policy was loaded in its place
    assert builder.observation().shape == (OBS_DIM,)
