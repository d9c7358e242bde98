"""Fine-tuning: critic warm-up freezes the actor; the actor takes smaller steps; the BC term is in
the loss; target_kl stops only the actor; resumed segments are seeded anew; the BC weight is a
function of timesteps; the hand-over releases the actor; the log-std may step at its own rate."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from learning_helpers import TINY, TINY_KWARGS, synthetic_demos, tiny_vec_env

from pidog_description.spec import (
    FRAME_DIM,
    OBS_FRAME,
    OBS_SLICES,
    mirror_action,
    mirror_observation,
    observation_layout,
)
from pidog_learning.bc import train_bc
from pidog_learning.config import merge
from pidog_learning.networks import make_policy, state_only_batch
from pidog_learning.ppo_finetune import (
    AntiForgettingCallback,
    BCTerm,
    NoiseAnnealCallback,
    PeriodicCallback,
    build_ppo,
    commands_within,
    restore,
    save_checkpoint,
    segment_seed,
    start_from,
)
from pidog_learning.smoothness import feedback_mask, smoothness_loss
from pidog_learning.symmetry import symmetry_loss


def bc_prior(demos, epochs: int):
    """A tiny BC policy to start PPO from."""
    bc = make_policy(TINY_KWARGS, use_camera=False)
    train_bc(
        demos,
        bc,
        epochs=epochs,
        learning_rate=1e-3,
        batch_size=64,
        validation_fraction=0.2,
        seed=0,
        progress=False,
    )
    return bc


@pytest.fixture
def model():
    demos = synthetic_demos()
    bc = bc_prior(demos, epochs=2)
    config = merge(TINY, {"finetune": {"actor_lr_scale": 0.25}})
    env = tiny_vec_env()
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
    callback = AntiForgettingCallback(
        0, demos, bc_weight=0.5, bc_decay=0.9, batch_size=32, seed=0, decay_timesteps=64
    )
    model.learn(128, callback=callback)
    assert any(not torch.equal(a, b) for a, b in zip(actor_state(model), before, strict=True))
    groups = {g["name"]: g["lr"] for g in model.policy.optimizer.param_groups}
    assert groups["actor"] == pytest.approx(0.25 * groups["critic"])
    assert groups["critic"] == pytest.approx(TINY["learning_rate"])
    # The second update trains on the rollout that ends at 128 timesteps: 2 x 64 of decay.
    assert callback.weight == pytest.approx(0.5 * 0.9**2)
    assert callback.last_bc_loss is not None and np.isfinite(callback.last_bc_loss)


def test_the_log_std_steps_at_its_own_rate_and_stays_frozen_in_the_warm_up() -> None:
    demos = synthetic_demos()
    bc = bc_prior(demos, epochs=2)
    moved = {}
    for scale in (1.0, 10.0):
        config = merge(TINY, {"finetune": {"actor_lr_scale": 0.25, "log_std_lr_scale": scale}})
        env = tiny_vec_env()
        model = build_ppo(config, env, None, {})
        start_from(model, bc, initial_log_std=-3.0)
        before = model.policy.log_std.detach().clone()
        warmup = AntiForgettingCallback(10_000, demos, bc_weight=1.0, bc_decay=0.9, batch_size=32, seed=0)
        model.learn(64, callback=warmup)
        assert torch.equal(model.policy.log_std, before), "the warm-up trains the critic alone"
        callback = AntiForgettingCallback(0, demos, bc_weight=0.5, bc_decay=0.9, batch_size=32, seed=0)
        model.learn(128, callback=callback, reset_num_timesteps=False)
        moved[scale] = float((model.policy.log_std.detach() - before).abs().mean())
        groups = {g["name"]: g for g in model.policy.optimizer.param_groups}
        env.close()
        if scale == 1.0:  # the log-std steps with the actor, in its group, as runs before the option
            assert sorted(groups) == ["actor", "critic"]
            continue
        assert groups["log_std"]["params"] == [model.policy.log_std]
        assert all(p is not model.policy.log_std for p in groups["actor"]["params"])
        assert groups["log_std"]["lr"] == pytest.approx(10.0 * groups["actor"]["lr"])
        assert groups["actor"]["lr"] == pytest.approx(0.25 * groups["critic"]["lr"])
    assert moved[10.0] > 3.0 * moved[1.0] > 0.0, moved


def test_a_bc_weight_below_its_floor_drops_the_term(model) -> None:
    model, demos = model
    # w(64) = 0.5 x 0.1 = 0.05 is above the floor of 0.01; w(128) = 0.005 is below it.
    callback = AntiForgettingCallback(
        0, demos, bc_weight=0.5, bc_decay=0.1, batch_size=32, seed=0, decay_timesteps=64, min_weight=0.01
    )
    assert callback.bc_weight_at(64) == pytest.approx(0.05) and callback.bc_weight_at(128) == 0.0
    # The floor does not move the hand-over: with it at 0.001, w(128) = 0.005 is not past it.
    late = AntiForgettingCallback(
        0, demos, bc_weight=0.5, bc_decay=0.1, batch_size=32, seed=0, decay_timesteps=64,
        min_weight=0.01, handover_weight=0.001,
    )  # fmt: skip
    assert late.bc_weight_at(128) == 0.0 and not late._past_handover(128) and late._past_handover(192)
    model.learn(64, callback=callback)
    assert callback.weight == pytest.approx(0.05) and callback.last_bc_loss is not None
    assert callback.term is not None
    callback.term.last_losses = {}
    model.learn(64, callback=callback, reset_num_timesteps=False)
    assert callback.weight == 0.0
    assert callback.last_bc_loss is None, "a dropped term must not be computed"


def test_the_kept_bc_term_holds_the_prior_only_at_the_kept_commands_and_never_decays(model) -> None:
    """finetune.bc_keep_weight: a BC term on the demonstrations whose command lies in the box,
    still there when the decaying term is gone; the other demonstrations do not enter it."""
    model, demos = model
    obs = demos.observations.copy()
    command = OBS_SLICES["command"]
    obs[:, command] = 0.5  # outside the box (vx 0.5 m/s, wz 0.5 rad/s)
    obs[::3, command] = [0.1, 0.0]  # every third sample walks straight at 0.1 m/s: inside
    box = {"vx": (-0.15, 0.15), "wz": (-0.05, 0.05)}
    inside = commands_within(obs, box)
    np.testing.assert_array_equal(inside, np.arange(0, len(obs), 3))
    # Demonstrated actions equal to the policy's own where the command is kept, far from them
    # elsewhere: the kept term reads zero only if it never draws an outside sample.
    with torch.no_grad():
        own = model.policy.mean_actions(state_only_batch(model.policy, torch.as_tensor(obs))).numpy()
    actions = np.where(np.isin(np.arange(len(obs)), inside)[:, None], own, own + 0.5).astype(np.float32)
    shaped = type(demos)(obs, actions, demos.episode_starts)
    callback = AntiForgettingCallback(
        0, shaped, bc_weight=0.5, bc_decay=0.1, batch_size=256, seed=0, decay_timesteps=64,
        min_weight=0.01, keep_weight=2.0, keep_commands=box,
    )  # fmt: skip
    assert callback.term is not None
    term = callback.term
    term.weight = 0.0  # the decaying term already gone
    kept = term.loss(model.policy)
    assert kept is not None and float(kept.detach()) == pytest.approx(0.0, abs=1e-10)
    assert list(term.last_losses) == ["bc_keep_loss"]
    term.weight = 0.5  # with the decaying term, over every demonstration: ~a third of them inside
    both = term.loss(model.policy)
    assert both is not None
    loss = float(both.detach()) - 2.0 * term.last_losses["bc_keep_loss"]
    assert loss == pytest.approx(0.5 * term.last_losses["bc_loss"]) and term.last_losses["bc_loss"] > 0.1
    # In training: after the decaying term has fallen below its floor the kept one still runs.
    model.learn(128, callback=callback)
    assert callback.weight == 0.0 and callback.term.last_losses.keys() == {"bc_keep_loss"}
    # A box no demonstration's command lies in is refused by name.
    with pytest.raises(ValueError, match="bc_keep_commands"):
        BCTerm(shaped, 32, 0, keep_weight=1.0, keep_commands={"vx": (0.2, 0.3), "wz": (0.0, 0.0)})


def test_periodic_work_stops_at_its_limit(model) -> None:
    model, _ = model
    seen: list[int] = []
    step = model.n_envs * model.n_steps  # one rollout
    callback = PeriodicCallback(step, lambda m: seen.append(m.num_timesteps), until=3 * step)
    model.learn(4 * step, callback=callback)
    # Fired after the first two rollouts; the third and fourth are at or past the limit.
    assert seen == [step, 2 * step]


def filled_model(demos, config_overrides: dict, seed: int = 0):
    """A FinetunePPO whose rollout buffer holds one rollout (collected with the actor frozen)."""
    bc = bc_prior(demos, epochs=1)
    config = merge(TINY, config_overrides)
    env = tiny_vec_env()
    model = build_ppo(config, env, None, {}, seed=seed)
    start_from(model, bc, initial_log_std=-1.0)
    model.learn(64, callback=AntiForgettingCallback(10_000, None, 0.0, 0.9, 32, 0))
    return model


def snapshot(model) -> tuple[dict, dict]:
    return copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict())


def actor_update(model, state, returns_scale: float, demos, bc_weight: float) -> list[torch.Tensor]:
    """Actor parameters after one train() from ``state`` with the critic's targets scaled."""
    model.policy.load_state_dict(state[0])
    model.policy.optimizer.load_state_dict(state[1])
    buffer = model.rollout_buffer
    original = buffer.returns.copy()
    buffer.returns = original * returns_scale
    model.bc_term = BCTerm(demos, batch_size=32, seed=3)
    model.bc_term.weight = bc_weight
    model.actor_frozen = False
    np.random.seed(0)  # the minibatch order
    model.train()
    buffer.returns = original
    return actor_state(model)


def test_bc_term_is_in_the_loss_and_the_actor_step_ignores_the_critics_error() -> None:
    """With the BC term added after clipping (an optimizer pre-hook) or one clipping norm for
    actor and critic, a large value loss changes the actor's PPO:BC balance; here it must not."""
    demos = synthetic_demos()
    model = filled_model(demos, {"ppo": {"n_epochs": 3, "batch_size": 16, "max_grad_norm": 0.5}})
    state = snapshot(model)
    small = actor_update(model, state, 1.0, demos, bc_weight=1.0)
    assert model.bc_term.last_loss is not None
    huge = actor_update(model, state, 1000.0, demos, bc_weight=1.0)  # value loss ~1e6x larger
    for a, b in zip(small, huge, strict=True):
        torch.testing.assert_close(a, b)
    without_bc = actor_update(model, state, 1.0, demos, bc_weight=0.0)
    assert any(not torch.allclose(a, b) for a, b in zip(small, without_bc, strict=True)), (
        "BC term had no effect"
    )


def test_target_kl_stops_the_actor_but_not_the_critic() -> None:
    demos = synthetic_demos()
    model = filled_model(demos, {"ppo": {"n_epochs": 4, "batch_size": 16, "target_kl": 1e-9}})
    minibatches = 4 * (64 // 16)
    steps: list[tuple[bool, bool]] = []
    step = model._step

    def counting_step(loss: torch.Tensor, critic_only: bool = False) -> None:
        step(loss, critic_only)
        steps.append(
            (
                any(p.grad is not None for p in model.policy.actor_parameters()),
                model.policy.value_net.weight.grad is not None,
            )
        )

    model._step = counting_step
    model.actor_frozen = False
    model.train()
    assert len(steps) == minibatches, "the critic must train on every minibatch of every epoch"
    assert all(critic for _, critic in steps)
    assert steps[0][0] and not any(actor for actor, _ in steps[1:]), "the actor stops after the KL limit"
    assert model.actor_epochs == 1


def test_a_resumed_segment_does_not_replay_the_first_runs_episodes(tmp_path) -> None:
    """SB3 re-seeds envs, torch and numpy with PPO's seed: the resumed segment gets its own."""
    assert segment_seed(42, 0) == 42
    assert segment_seed(42, 64) == segment_seed(42, 64) != segment_seed(42, 128)

    def first_rollout(start: int, checkpoint=None):
        env = tiny_vec_env()
        model = build_ppo(TINY, env, None, {}, seed=segment_seed(TINY["seed"], start))
        if checkpoint is not None:
            restore(model, checkpoint)
        model.learn(
            64, reset_num_timesteps=False, callback=AntiForgettingCallback(10_000, None, 0.0, 0.9, 32, 0)
        )
        obs = model.rollout_buffer.observations.copy()
        actions = model.rollout_buffer.actions.copy()
        return model, obs, actions

    first, obs0, act0 = first_rollout(0)
    checkpoint = save_checkpoint(first, tmp_path / "latest.zip")
    _, obs1, act1 = first_rollout(64, checkpoint)
    assert not np.allclose(obs0[0], obs1[0]), "the resumed run starts the same episode again"
    assert not np.allclose(act0 - act0.mean(), act1 - act1.mean()), "the resumed run replays its noise"
    _, again, _ = first_rollout(0)
    np.testing.assert_array_equal(obs0, again)  # and a fresh run is still reproducible


def test_bc_weight_is_continuous_in_timesteps_across_an_n_envs_change() -> None:
    callback = AntiForgettingCallback(1000, synthetic_demos(), 0.2, 0.9, 32, 0, decay_timesteps=4096)
    # A run at 4 envs x 1024 steps, resumed at 41,960 timesteps with 8 envs x 1024.
    before = list(range(1000 + 4096, 41_961, 4096))
    after = [before[-1] + 8192 * k for k in range(1, 4)]
    times = before + after
    weights = [callback.bc_weight_at(t) for t in times]
    for t0, t1, w0, w1 in zip(times[:-1], times[1:], weights[:-1], weights[1:], strict=True):
        assert w1 == pytest.approx(w0 * 0.9 ** ((t1 - t0) / 4096)), "the weight follows timesteps only"
    assert callback.bc_weight_at(1000) == 0.0 and callback.bc_weight_at(1001) == pytest.approx(0.2, rel=1e-3)


def test_hand_over_releases_the_actor_once_the_bc_term_has_decayed(model) -> None:
    model, demos = model
    callback = AntiForgettingCallback(
        0,
        demos,
        bc_weight=1.0,
        bc_decay=0.5,
        batch_size=32,
        seed=0,
        decay_timesteps=64,
        handover_weight=0.4,
        handover_lr_scale=1.0,
        handover_log_std=-2.0,
    )
    model.learn(64, callback=callback)  # w(64) = 0.5: still the prior's turn
    groups = {g["name"]: g["lr"] for g in model.policy.optimizer.param_groups}
    assert not callback.handed_over and groups["actor"] == pytest.approx(0.25 * groups["critic"])
    assert float(model.policy.log_std.detach().max()) < -2.5
    model.learn(64, callback=callback, reset_num_timesteps=False)  # w(128) = 0.25 < 0.4
    groups = {g["name"]: g["lr"] for g in model.policy.optimizer.param_groups}
    assert callback.handed_over and groups["actor"] == pytest.approx(groups["critic"])
    assert float(model.policy.log_std.detach().min()) >= -2.0 - 0.01  # raised, then PPO's to move


def test_the_update_runs_on_every_core_and_the_rollout_on_one_thread(model) -> None:
    """The learner update gets every core (nothing else runs then); afterwards the rollout's
    setting is back, so the policy's forward pass does not fight the physics threads."""
    from pidog_sim.batch import default_threads

    ppo, _ = model
    ppo.update_threads = 0  # the default's "every core" (the tiny preset runs its tests on one)
    seen: list[int] = []
    update = ppo._update
    ppo._update = lambda: (seen.append(torch.get_num_threads()), update())  # type: ignore[method-assign]
    torch.set_num_threads(1)
    ppo.learn(ppo.n_steps * ppo.n_envs)
    assert seen and set(seen) == {default_threads()}
    assert torch.get_num_threads() == 1
    ppo.update_threads = 1
    ppo.learn(ppo.n_steps * ppo.n_envs, reset_num_timesteps=False)
    assert seen[-1] == 1
    with pytest.raises(ValueError, match="torch thread count"):
        ppo.update_threads = -1
        ppo.train()


def test_the_symmetry_term_makes_the_actor_commute_with_the_left_right_mirror() -> None:
    """PPO updates with ``ppo.symmetry_loss_weight`` must make pi(mirror(o)) approach
    mirror(pi(o)) on the rollout's observations; the same updates without it must not."""
    demos = synthetic_demos()
    losses = {}
    for weight in (0.0, 20.0):
        model = filled_model(
            demos,
            {"ppo": {"n_epochs": 10, "batch_size": 16, "target_kl": 0.0, "symmetry_loss_weight": weight}},
        )
        assert model.symmetry_weight == weight
        with torch.no_grad():  # a lopsided prior: the left legs bent further than the right
            model.policy.action_net.bias[[0, 1, 4, 5]] += 0.3
        # A rollout of the lopsided policy (critic only): PPO alone then has no reason to undo
        # the lean, as it would for a rollout of the symmetric prior the lean was added to.
        model.learn(64, callback=AntiForgettingCallback(10_000, None, 0.0, 0.9, 32, 0))
        obs = torch.as_tensor(
            model.rollout_buffer.observations.reshape(-1, model.rollout_buffer.obs_shape[0])
        )
        with torch.no_grad():
            before = float(symmetry_loss(model.policy, obs))
        model.actor_frozen = False
        for _ in range(3):
            model.train()
        with torch.no_grad():
            losses[weight] = (before, float(symmetry_loss(model.policy, obs)))
    (before_off, after_off), (before_on, after_on) = losses[0.0], losses[20.0]
    assert before_on > 0 and before_off > 0
    assert after_on < 0.3 * before_on, f"symmetry loss {before_on:.2e} -> {after_on:.2e} with the term"
    assert after_on / before_on < 0.3 * after_off / before_off, (
        f"with the term {losses[20.0]}, without {losses[0.0]}"
    )


def test_exploration_noise_is_annealed_over_the_end_of_training(model) -> None:
    """PPO tunes the mean for the noise it explores with, and the robot runs the mean: from
    ``noise_anneal_from`` the log-std's ceiling falls linearly to ``final_log_std``, applied before
    each rollout (so the rollout is collected with the std it trains on)."""
    model, _demos = model
    anneal = NoiseAnnealCallback(
        start_timesteps=64, total_timesteps=320, start_log_std=-1.0, final_log_std=-3.0
    )
    assert anneal.ceiling(64) == float("inf")
    assert anneal.ceiling(192) == pytest.approx(-2.0)
    assert anneal.ceiling(10_000) == pytest.approx(-3.0)
    with torch.no_grad():
        model.policy.log_std.fill_(-1.0)
    seen: list[float] = []

    class Spy(AntiForgettingCallback):
        def _on_rollout_start(self) -> None:
            seen.append(float(self.model.policy.log_std.detach().max()))

    model.learn(320, callback=[anneal, Spy(0, None, 0.0, 0.9, 32, 0)])
    # Rollouts start at 0, 64, ..., 256: no ceiling at or before 64, then -1.5, -2.0, -2.5.
    assert seen[:2] == pytest.approx([-1.0, -1.0], abs=0.05)
    assert seen[2:] == pytest.approx([-1.5, -2.0, -2.5], abs=1e-6)


def test_gsde_noise_has_the_configured_strength_is_held_per_draw_and_deploys_its_mean(tmp_path) -> None:
    """policy.exploration='gsde': the noise starts at exp(initial_log_std) action units on the
    demonstrations' states (whatever the hidden layer's scale), one noise draw gives the same
    action for the same state until it is redrawn, PPO trains with it, and its checkpoint
    exports (the deployed policy is the mean: nothing random reaches the robot). BC weights
    made under Gaussian noise start it."""
    from pidog_learning.bc import checkpoint_metadata
    from pidog_learning.export import export_onnx, load_checkpoint_policy
    from pidog_learning.networks import policy_kwargs

    demos = synthetic_demos()
    bc = bc_prior(demos, epochs=2)  # Gaussian log-std (8,): only the mean is copied
    config = merge(TINY, {"policy": {"exploration": "gsde"}, "ppo": {"sde_sample_freq": 16}})
    env = tiny_vec_env()
    try:
        model = build_ppo(config, env, None, checkpoint_metadata(policy_kwargs(config), False))
        policy = model.policy
        assert model.use_sde and policy.log_std.shape == (TINY["policy"]["net_arch"][-1], 8)
        start_from(model, bc, initial_log_std=-1.5, observations=demos.observations)
        states = torch.as_tensor(demos.observations[:200])
        padded_all = torch.cat([states, torch.zeros((len(states), policy.privileged_dim))], dim=1)
        with torch.no_grad():  # SB3's own distribution, the one PPO samples from
            sampled_std = policy.get_distribution(padded_all).distribution.stddev.mean()
        assert float(sampled_std) == pytest.approx(np.exp(-1.5), rel=0.05)
        assert policy.action_std(states) == pytest.approx(float(sampled_std), rel=1e-4)
        torch.testing.assert_close(policy.mean_actions(states), bc.mean_actions(states))

        padded = padded_all[:4]
        policy.reset_noise(4)
        with torch.no_grad():
            first, second = policy(padded)[0], policy(padded)[0]
            policy.reset_noise(4)
            redrawn = policy(padded)[0]
        torch.testing.assert_close(first, second)  # held: a function of the state
        assert float(torch.abs(redrawn - first).mean()) > 0.02  # a new draw moves it

        model.learn(total_timesteps=2 * model.n_steps * model.n_envs)
        reloaded = load_checkpoint_policy(save_checkpoint(model, tmp_path / "ppo.zip"))
        assert reloaded.use_sde
        torch.testing.assert_close(reloaded.mean_actions(states), policy.mean_actions(states))
        export_onnx(
            reloaded, tmp_path / "policy.onnx", {"timesteps": model.num_timesteps}
        )  # checks onnxruntime
    finally:
        env.close()


def test_reward_scale_reaches_ppo_but_not_the_logged_returns() -> None:
    """ppo.reward_scale shrinks what the critic learns from; reports keep the task's units."""
    from pidog_learning.ppo_finetune import ScaledReward, make_vec_env

    def run(scale: float) -> tuple[list[float], float]:
        env = make_vec_env(
            merge(TINY, {"n_envs": 1, "env": {"episode_seconds": 0.2}, "ppo": {"reward_scale": scale}}),
            seed=0,
        )
        assert isinstance(env, ScaledReward) == (scale != 1.0)
        env.reset()
        rewards, logged = [], float("nan")
        for _ in range(12):  # one 10-step episode and into the next
            _, reward, done, infos = env.step(np.zeros((1, env.action_space.shape[0]), dtype=np.float32))
            rewards.append(float(reward[0]))
            if done[0]:
                logged = infos[0]["episode"]["r"]
        env.close()
        return rewards, logged

    plain, plain_return = run(1.0)
    scaled, scaled_return = run(0.01)
    np.testing.assert_allclose(scaled, 0.01 * np.array(plain), rtol=1e-6)
    assert abs(plain[0]) > 0.1, "the task pays a reward worth scaling"
    assert scaled_return == pytest.approx(plain_return) and np.isfinite(plain_return)


def test_the_symmetry_loss_mirrors_a_history_policys_past_frames_too() -> None:
    """The loss reflects the observation of the policy's own layout: for pidog-obs-v1h2 it is
    the numpy spec's mirror of all 70 values (a v1 mirror would leave the past unreflected)."""
    policy = make_policy({**TINY_KWARGS, "obs_history": 2}, use_camera=False)
    obs = np.random.default_rng(0).normal(size=(32, policy.layout.dim)).astype(np.float32)
    with torch.no_grad():
        loss = float(symmetry_loss(policy, torch.as_tensor(obs)))
        actions = policy.mean_actions(torch.as_tensor(obs)).numpy()
        mirrored = policy.mean_actions(torch.as_tensor(mirror_observation(obs))).numpy()
    assert loss == pytest.approx(float(np.mean((mirrored - mirror_action(actions)) ** 2)), rel=1e-5)
    assert loss > 0  # an untrained network is not symmetric: the comparison means something


def test_the_smoothness_term_makes_the_actor_answer_its_feedback_less_and_leaves_the_command_alone() -> None:
    """PPO updates with ``ppo.smoothness_loss_weight`` must lower how much the actor's mean
    action moves for a small perturbation of what the robot senses and did (the loss) on the
    rollout's observations, where the same updates without it do not; the command and the gait
    clock are never perturbed, so the action may still follow them."""
    demos = synthetic_demos()
    losses = {}
    for weight in (0.0, 5000.0):
        model = filled_model(
            demos,
            {"ppo": {"n_epochs": 10, "batch_size": 16, "target_kl": 0.0, "smoothness_loss_weight": weight,
                     "smoothness_sigma": 0.2}},
        )  # fmt: skip
        assert model.smoothness_weight == weight
        with torch.no_grad():  # a jumpy prior: its first layer answers the feedback 20-fold
            first = model.policy.mlp_extractor.policy_net[0]
            first.weight[:, feedback_mask(model.policy.layout).bool()] *= 20.0
        obs = torch.as_tensor(
            model.rollout_buffer.observations.reshape(-1, model.rollout_buffer.obs_shape[0])
        )
        probe = torch.Generator().manual_seed(5)
        with torch.no_grad():
            before = float(smoothness_loss(model.policy, obs, 0.2, probe))
        model.actor_frozen = False
        for _ in range(3):
            model.train()
        with torch.no_grad():
            losses[weight] = (before, float(smoothness_loss(model.policy, obs, 0.2, probe.manual_seed(5))))
    (before_off, after_off), (before_on, after_on) = losses[0.0], losses[5000.0]
    assert before_on > 0 and before_off > 0
    assert after_on < 0.5 * before_on, f"smoothness loss {before_on:.2e} -> {after_on:.2e} with the term"
    assert after_on / before_on < 0.5 * after_off / before_off, (
        f"with the term {losses[5000.0]}, without {losses[0.0]}"
    )


def test_the_smoothness_perturbation_moves_every_frame_of_feedback_and_never_the_command_or_clock() -> None:
    layout = observation_layout(2)
    mask = feedback_mask(layout).numpy()
    for name in ("command", "phase"):
        assert not mask[OBS_SLICES[name]].any(), name
    for name, _size in OBS_FRAME:
        assert mask[OBS_SLICES[name]].all(), name
    assert mask[layout.past].all() and mask.sum() == FRAME_DIM * (1 + layout.history)
    policy = make_policy({**TINY_KWARGS, "obs_history": 2}, use_camera=False)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(16, layout.dim)).astype(np.float32))
    with torch.no_grad():
        assert float(smoothness_loss(policy, obs, 0.1)) > 0
