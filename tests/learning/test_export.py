"""ONNX export: same actions as torch, normaliser in the graph, the metadata the robot checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from learning_helpers import TINY_KWARGS, synthetic_demos

from pidog_control.policy_runtime import OnnxPolicy
from pidog_description.spec import OBS_DIM, metadata_mismatches
from pidog_learning.bc import checkpoint_metadata, save_policy_weights, train_bc
from pidog_learning.export import (
    export_onnx,
    load_checkpoint_policy,
    main,
    policy_controller,
    recorded_exploration_std,
    torch_actions,
)
from pidog_learning.networks import make_policy


@pytest.fixture(scope="module")
def policy():
    policy = make_policy(TINY_KWARGS, use_camera=False)
    train_bc(
        synthetic_demos(),
        policy,
        epochs=3,
        learning_rate=1e-3,
        batch_size=64,
        validation_fraction=0.2,
        seed=0,
        progress=False,
    )
    assert policy.normalizer.std.max() > 2.0  # a normaliser that matters if it were left out
    return policy


def random_obs(policy, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean, std = policy.normalizer.mean.numpy(), policy.normalizer.std.numpy()
    return (mean + std * rng.normal(0.0, 2.0, (n, OBS_DIM))).astype(np.float32)


def test_onnx_matches_torch_within_1e_5(policy, tmp_path: Path) -> None:
    path = export_onnx(policy, tmp_path / "policy.onnx", {"timesteps": 0})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = random_obs(policy, 256, seed=7)
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    with torch.no_grad():
        torch_mean = policy.mean_actions(torch.as_tensor(obs)).numpy()
    assert np.max(np.abs(onnx_actions - np.clip(torch_mean, -1, 1))) <= 1e-5
    # What PPO would do, clipped by SB3 (its input carries the critic's privileged columns).
    padded = np.hstack([obs, np.zeros((len(obs), policy.privileged_dim), np.float32)])
    sb3_actions, _ = policy.predict(padded, deterministic=True)
    assert np.max(np.abs(onnx_actions - sb3_actions)) <= 1e-5
    assert np.all(np.abs(onnx_actions) <= 1.0)


def test_onnx_records_the_exploration_noise_ppo_ran_with(policy, tmp_path: Path) -> None:
    noisier = copy.deepcopy(policy)
    noisier.set_action_std(-2.0)  # what PPO's learnt log-std might have reached
    path = export_onnx(noisier, tmp_path / "policy.onnx", {"timesteps": 0})
    info = json.loads(OnnxPolicy(path).metadata["training_info"])
    assert info["exploration_std"] == pytest.approx(np.exp(-2.0), abs=1e-4)
    assert info["timesteps"] == 0  # the caller's facts are kept beside it
    # What a benchmark reads back; a file exported before the noise was recorded has none.
    assert recorded_exploration_std(OnnxPolicy(path).metadata) == info["exploration_std"]
    assert recorded_exploration_std({"training_info": json.dumps({"timesteps": 0})}) is None


def test_privileged_critic_never_reaches_the_onnx(policy, tmp_path: Path) -> None:
    assert policy.privileged_dim > 0  # the default configuration trains an asymmetric critic
    path = export_onnx(policy, tmp_path / "policy.onnx", {"timesteps": 0})
    graph = onnx.load(str(path)).graph
    [obs_input] = graph.input  # the deployable observation and nothing else
    assert [d.dim_value for d in obs_input.type.tensor_type.shape.dim][1:] == [OBS_DIM]
    exported = sum(int(np.prod(t.dims)) for t in graph.initializer)
    actor = sum(p.numel() for p in policy.mean_parameters()) + 2 * OBS_DIM  # + normaliser mean/std
    critic = sum(p.numel() for p in policy.mlp_extractor.value_net.parameters())
    assert exported <= actor < actor + critic  # no critic weight (nor privileged stats) inside


def test_onnx_carries_the_robot_metadata_and_loads_in_the_policy_runtime(policy, tmp_path: Path) -> None:
    path = export_onnx(policy, tmp_path / "policy.onnx", {"timesteps": 1234, "experiment": "x"})
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata_mismatches(meta) == []
    assert json.loads(meta["training_info"])["timesteps"] == 1234
    runtime = OnnxPolicy(path)
    obs = random_obs(policy, 1, seed=3)[0]
    np.testing.assert_allclose(runtime.act(obs), policy_controller(policy)(obs), atol=1e-5)


def test_camera_policy_exports_with_an_image_input(tmp_path: Path) -> None:
    policy = make_policy(TINY_KWARGS, use_camera=True)
    with torch.no_grad():
        policy.features_extractor.image_gate.fill_(0.5)  # an open gate: the image must matter
    path = export_onnx(policy, tmp_path / "camera.onnx", {})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {
        "obs": random_obs(policy, 16, seed=1),
        "image": rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8),
    }
    got = session.run(["action"], inputs)[0]
    np.testing.assert_allclose(got, torch_actions(policy, inputs), atol=1e-5)
    black = session.run(["action"], {**inputs, "image": np.zeros_like(inputs["image"])})[0]
    assert not np.allclose(got, black)


def test_pidog_export_cli_on_bc_weights(policy, tmp_path: Path, capsys) -> None:
    weights = save_policy_weights(policy, tmp_path / "bc.pth", checkpoint_metadata(TINY_KWARGS, False))
    assert main([str(weights), "-o", str(tmp_path / "out.onnx")]) == 0
    assert str((tmp_path / "out.onnx").resolve()) in capsys.readouterr().out
    reloaded = load_checkpoint_policy(weights)
    obs = random_obs(policy, 8, seed=5)
    out = ort.InferenceSession(str(tmp_path / "out.onnx")).run(["action"], {"obs": obs})[0]
    np.testing.assert_allclose(out, torch_actions(reloaded, {"obs": obs}), atol=1e-5)


def test_pidog_export_refuses_a_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SystemExit) as exc:
        main([str(bad), "-o", str(tmp_path / "x.onnx")])
    assert exc.value.code == 2
    assert not (tmp_path / "x.onnx").exists()
