"""BC trains the PPO policy class; its weights (normaliser included) move into PPO exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from learning_helpers import TINY, TINY_KWARGS, synthetic_demos

from pidog_learning.bc import (
    PretrainedModelError,
    checkpoint_metadata,
    load_bc_policy,
    save_policy_weights,
    split_episodes,
    train_bc,
)
from pidog_learning.networks import make_policy
from pidog_learning.normalization import observation_stats
from pidog_learning.ppo_finetune import build_ppo, make_vec_env, start_from


@pytest.fixture(scope="module")
def trained():
    demos = synthetic_demos()
    policy = make_policy(TINY_KWARGS, use_camera=False)
    result = train_bc(
        demos,
        policy,
        epochs=60,
        learning_rate=3e-3,
        batch_size=64,
        validation_fraction=0.2,
        seed=0,
        progress=False,
    )
    return demos, policy, result


def test_bc_fits_the_demonstrations(trained) -> None:
    demos, policy, result = trained
    baseline = float(np.mean((demos.actions - demos.actions.mean(axis=0)) ** 2))  # predict the mean action
    assert result.val_loss[result.best_epoch] < 0.2 * baseline
    assert result.train_loss[-1] < result.train_loss[0]
    assert result.n_val > 0 and result.n_train + result.n_val == len(demos)


def test_validation_split_holds_out_whole_episodes() -> None:
    demos = synthetic_demos(n_episodes=10, steps=20)
    train, val = split_episodes(demos, 0.2, seed=3)
    assert len(val) == 40 and len(set(train) & set(val)) == 0
    episode = np.cumsum(demos.episode_starts) - 1
    assert not set(episode[train]) & set(episode[val])


def test_normaliser_comes_from_the_training_demos(trained) -> None:
    demos, policy, _ = trained
    train, _val = split_episodes(demos, 0.2, seed=0)
    mean, std = observation_stats(demos.observations[train])
    np.testing.assert_allclose(policy.normalizer.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(policy.normalizer.std.numpy(), std, rtol=1e-6)


def test_ppo_starts_with_exactly_the_bc_policy(trained, tmp_path: Path) -> None:
    demos, bc_policy, _ = trained
    path = save_policy_weights(
        bc_policy, tmp_path / "bc_pretrained_policy.pth", checkpoint_metadata(TINY_KWARGS, False)
    )
    raw = torch.load(path, weights_only=True)  # the DESIGN.md §5 promise
    assert set(raw) == {"state_dict", "metadata"}
    reloaded = load_bc_policy(path, TINY_KWARGS, use_camera=False)

    env = make_vec_env(TINY, seed=0)  # the batched simulator, privileged critic on (TINY)
    try:
        model = build_ppo(TINY, env, None, {})
        start_from(model, reloaded, initial_log_std=-1.5)
        assert type(model.policy) is type(bc_policy)
        assert model.policy.privileged_dim > 0
        obs = demos.observations[::7]
        rng = np.random.default_rng(0)
        # The policy input carries privileged columns for the critic; the actions must not
        # depend on them (they do not exist on the robot).
        padded = [
            np.hstack([obs, rng.normal(0, 5, (len(obs), model.policy.privileged_dim))]).astype(np.float32)
            for _ in range(2)
        ]
        ppo_actions, _ = model.predict(padded[0], deterministic=True)
        ppo_actions_other, _ = model.predict(padded[1], deterministic=True)
        bc_actions, _ = bc_policy.predict(padded[1], deterministic=True)
        np.testing.assert_array_equal(ppo_actions, bc_actions)
        np.testing.assert_array_equal(ppo_actions, ppo_actions_other)
        with torch.no_grad():
            values = [model.policy.predict_values(torch.as_tensor(p)) for p in padded]
        assert not torch.allclose(values[0], values[1])  # ... while the critic reads them
        np.testing.assert_array_equal(model.policy.normalizer.std.numpy(), bc_policy.normalizer.std.numpy())
        assert torch.allclose(
            model.policy.log_std, torch.full((8,), -1.5)
        )  # the deliberate exploration noise
    finally:
        env.close()


def test_weights_of_another_architecture_are_refused(trained, tmp_path: Path) -> None:
    _demos, policy, _ = trained
    path = save_policy_weights(policy, tmp_path / "w.pth", checkpoint_metadata(TINY_KWARGS, False))
    other = {**TINY_KWARGS, "hidden_sizes": [64, 64]}
    with pytest.raises(PretrainedModelError, match="hidden_sizes"):
        load_bc_policy(path, other, use_camera=False)
    with pytest.raises(PretrainedModelError, match="camera"):
        load_bc_policy(path, TINY_KWARGS, use_camera=True)
