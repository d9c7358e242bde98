"""The residual policy over the scripted trot (``policy.action_prior="trot"``): the torch trot in
the actor is the numpy gait the demonstrations and the teleop node run, PPO explores around it,
and the exported file carries it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from learning_helpers import TINY_KWARGS

from pidog_control.policy_runtime import OnnxPolicy
from pidog_description.spec import OBS_SLICES, observation_layout
from pidog_learning.action_prior import TrotPrior
from pidog_learning.export import export_onnx
from pidog_learning.networks import PiDogPolicy, make_policy
from pidog_sim.controllers import TrotController


def observations(n: int, history: int = 0, seed: int = 0) -> np.ndarray:
    """Random deployable observations on the gait clock's circle, with commands across and
    beyond the command limits (the stroke caps and the hip's lift limit both bind)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(0.0, 1.0, (n, observation_layout(history).dim)).astype(np.float32)
    phase = rng.uniform(0.0, 1.0, n)
    obs[:, OBS_SLICES["phase"]] = np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], axis=-1)
    obs[:, OBS_SLICES["command"]] = np.stack([rng.uniform(-0.4, 0.6, n), rng.uniform(-2.0, 2.0, n)], axis=-1)
    return obs


@pytest.mark.parametrize("history", [0, 2])
def test_the_torch_trot_is_the_scripted_gait(history: int) -> None:
    obs = observations(5000, history)
    want = TrotController()(obs)
    got = TrotPrior()(torch.as_tensor(obs)).numpy()
    assert np.max(np.abs(got - want)) < 1e-5
    # The sample covers what the gait does: both stroke caps, lifted and planted feet.
    assert np.ptp(want, axis=0).min() > 0.2


def residual_policy(zero_network: bool) -> PiDogPolicy:
    policy = make_policy({**TINY_KWARGS, "action_prior": "trot"}, use_camera=False)
    if zero_network:
        with policy.cloning_whole_actions():  # no cloning: leaving it zeroes the head, as after BC
            pass
    return policy


def with_privileged(policy, obs: np.ndarray) -> torch.Tensor:
    """What PPO feeds the policy: the deployable observation, then the critic's columns."""
    pad = np.random.default_rng(1).normal(0.0, 1.0, (len(obs), policy.privileged_dim)).astype(np.float32)
    return torch.as_tensor(np.hstack([obs, pad]))


def test_ppo_explores_around_the_trot_and_its_deterministic_action_is_the_trot() -> None:
    policy = residual_policy(zero_network=True)
    obs = observations(512, seed=3)
    trot = TrotController()(obs)
    with torch.no_grad():
        batch = with_privileged(policy, obs)
        deterministic, _values, _ = policy(batch, deterministic=True)
        assert np.max(np.abs(deterministic.numpy() - trot)) < 1e-5
        sampled, _values, log_prob = policy(batch)
        noise = sampled.numpy() - trot
        assert abs(float(noise.std()) - float(torch.exp(policy.log_std).mean())) < 0.02
        # PPO's update scores the same actions under the same distribution.
        _v, evaluated, _entropy = policy.evaluate_actions(batch, sampled)
        assert torch.allclose(evaluated, log_prob, atol=1e-5)
        mean = policy.get_distribution(batch).distribution.mean.numpy()
        assert np.max(np.abs(mean - trot)) < 1e-5
    # SB3's predict (evaluation of a checkpoint) runs the same trot.
    predicted, _ = policy.predict(obs, deterministic=True)
    assert np.max(np.abs(predicted - np.clip(trot, -1, 1))) < 1e-5


def test_the_network_adds_to_the_trot_and_a_plain_policy_has_no_trot() -> None:
    obs = torch.as_tensor(observations(256, seed=4))
    residual = residual_policy(zero_network=False)
    plain = make_policy(TINY_KWARGS, use_camera=False)
    plain.load_state_dict(residual.state_dict())  # the same weights: the trot is not a weight
    with torch.no_grad():
        trot = TrotPrior()(obs)
        assert torch.allclose(residual.mean_actions(obs), plain.mean_actions(obs) + trot, atol=1e-6)
        assert plain.mean_actions(obs).abs().max() < 0.5 * trot.abs().max()


def test_the_exported_file_carries_the_trot(tmp_path: Path) -> None:
    policy = residual_policy(zero_network=True)
    path = export_onnx(policy, tmp_path / "residual.onnx", {"timesteps": 0})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = observations(256, seed=5)
    actions = session.run(["action"], {"obs": obs})[0]
    assert np.max(np.abs(actions - TrotController()(obs))) < 1e-5
    # A zero observation (the policy runtime's load check) is the stand's clock at phase 0.
    zero = np.zeros((1, obs.shape[1]), np.float32)
    want = TrotPrior()(torch.as_tensor(zero)).numpy()
    assert np.max(np.abs(session.run(["action"], {"obs": zero})[0] - want)) < 1e-5
    assert np.isfinite(want).all()
    OnnxPolicy(str(path))  # loads and runs as the robot's policy node does


def test_cloning_a_residual_policy_teaches_its_features_and_starts_it_at_the_trot() -> None:
    """BC fits the network to the whole trot (the residual's target would be zero, which only
    shrinks the last layer), then zeroes the last layer: PPO starts at the trot with hidden
    layers that have learned the gait."""
    from pidog_learning.bc import train_bc
    from pidog_learning.demonstrations import Demonstrations

    obs = observations(2000, seed=5)
    demos = Demonstrations(obs, np.clip(TrotController()(obs), -1, 1), np.arange(2000) % 200 == 0)
    policy = residual_policy(zero_network=False)
    with policy.cloning_whole_actions():
        assert policy.prior is None
        result = train_bc(
            demos,
            policy,
            epochs=30,
            learning_rate=3e-3,
            batch_size=256,
            validation_fraction=0.2,
            seed=0,
            progress=False,
        )
        with torch.no_grad():
            alone = policy.mean_actions(torch.as_tensor(obs)).numpy()
    # Inside, the network alone learned the gait (not the zero residual).
    assert min(result.val_loss) < 0.5 * float(np.mean(demos.actions**2))
    assert float(np.mean((alone - demos.actions) ** 2)) < 0.5 * float(np.mean(demos.actions**2))
    # After it the policy is the trot again, exactly: the head is zero and the prior is back.
    assert policy.prior is not None
    assert float(policy.action_net.weight.detach().abs().max()) == 0.0
    with torch.no_grad():
        after = policy.mean_actions(torch.as_tensor(obs)).numpy()
    assert np.max(np.abs(after - TrotController()(obs))) < 1e-5


def test_cloning_a_plain_policy_leaves_its_head_alone() -> None:
    policy = make_policy(TINY_KWARGS, use_camera=False)
    head = policy.action_net.weight.detach().clone()
    with policy.cloning_whole_actions():
        pass
    assert policy.prior is None
    assert torch.equal(policy.action_net.weight, head)
