"""Measures against forgetting: critic warm-up freezes the actor; the actor takes smaller steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from learning_helpers import TINY, TINY_KWARGS, synthetic_demos
from stable_baselines3.common.vec_env import DummyVecEnv

from pidog_learning.bc import train_bc
from pidog_learning.config import merge
from pidog_learning.networks import make_policy
from pidog_learning.ppo_finetune import AntiForgettingCallback, build_ppo, start_from
from pidog_sim.env import PiDogEnv


@pytest.fixture
def model():
    demos = synthetic_demos()
    bc = make_policy(TINY_KWARGS, use_camera=False)
    train_bc(
        demos,
        bc,
        epochs=2,
        learning_rate=1e-3,
        batch_size=64,
        validation_fraction=0.2,
        seed=0,
        progress=False,
    )
    config = merge(TINY, {"finetune": {"actor_lr_scale": 0.25}})
    env = DummyVecEnv([lambda: PiDogEnv(episode_seconds=1.0)])
    model = build_ppo(config, env, None, {})
    start_from(model, bc, initial_log_std=-3.0)
    yield model, demos
    env.close()


def actor_state(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.actor_parameters()]


def test_critic_warmup_leaves_the_actor_untouched(model) -> None:
    model, demos = model
    obs = demos.observations[:50]
    before_actions, _ = model.predict(obs, deterministic=True)
    before_actor = actor_state(model)
    before_value = model.policy.value_net.weight.detach().clone()
    callback = AntiForgettingCallback(10_000, demos, bc_weight=1.0, bc_decay=0.9, batch_size=32, seed=0)
    model.learn(128, callback=callback)
    after_actions, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(after_actions, before_actions)
    for a, b in zip(actor_state(model), before_actor, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(model.policy.value_net.weight, before_value), (
        "the critic must learn during warm-up"
    )
    assert all(p.requires_grad for p in model.policy.actor_parameters()), "unfrozen again after training"


def test_after_warmup_the_actor_learns_at_a_scaled_rate_with_the_bc_term(model) -> None:
    model, demos = model
    before = actor_state(model)
    callback = AntiForgettingCallback(0, demos, bc_weight=0.5, bc_decay=0.9, batch_size=32, seed=0)
    model.learn(128, callback=callback)
    assert any(not torch.equal(a, b) for a, b in zip(actor_state(model), before, strict=True))
    groups = {g["name"]: g["lr"] for g in model.policy.optimizer.param_groups}
    assert groups["actor"] == pytest.approx(0.25 * groups["critic"])
    assert groups["critic"] == pytest.approx(TINY["learning_rate"])
    # Two PPO updates after warm-up: the DAPG weight decayed once and its loss was computed.
    assert callback.weight == pytest.approx(0.5 * 0.9)
    assert callback.last_bc_loss is not None and np.isfinite(callback.last_bc_loss)
