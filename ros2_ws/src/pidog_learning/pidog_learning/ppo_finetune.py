"""PPO fine-tuning of the BC policy, with measures against forgetting the prior.

- The PPO policy is the same ``PiDogPolicy`` BC trained; its whole state_dict (normaliser
  included) is loaded, so deterministic actions are identical at step 0.
- Critic warm-up: the BC critic is untrained, so for the first ``critic_warmup_timesteps``
  the actor's parameters are frozen and only the value function learns; noisy advantages
  from a random critic would otherwise push the good prior around.
- A deliberate initial log-std (``policy.initial_log_std``): enough exploration to improve,
  not so much that the trot falls apart.
- Small actor steps: the actor's parameter group steps at ``finetune.actor_lr_scale`` times
  the learning rate (``FinetunePPO``), and ``ppo.target_kl`` stops the actor's part of an
  update early (the critic keeps training).
- The exploration noise can be learnt down faster than the mean moves:
  ``finetune.log_std_lr_scale`` puts the log-std in a parameter group of its own that steps at
  that many times the actor's rate.
- DAPG-style BC term: ``w(t) * MSE(mean action, demo action)`` on a demo minibatch is part of
  the loss of every PPO minibatch (before backward and clipping), with
  ``w(t) = w_0 * decay^((t - warm-up) / finetune.bc_loss_decay_timesteps)`` over timesteps t,
  and 0 (the term is not computed) once it falls below ``finetune.bc_loss_min_weight``.
- The prior kept where it tracks (``finetune.bc_keep_weight``, off by default): a second BC term
  of constant weight on the demonstrations whose command lies in ``finetune.bc_keep_commands``,
  the commands the scripted gait itself follows (straight, slow, standing), which never decays.
- Hand-over: once w(t) falls below ``finetune.handover_bc_weight`` the actor's learning rate
  and exploration are released (``handover_actor_lr_scale``, ``handover_log_std``).
- Resume: a resumed segment is seeded by ``segment_seed`` (envs, torch, numpy, BC batches), so
  it does not replay the first run's episodes and noise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecTransposeImage

from pidog_description.spec import OBS_SLICES

from .atomic import atomic_output
from .bc import bc_loss
from .compute import torch_threads
from .demonstrations import Demonstrations
from .export import METADATA_ATTRIBUTE, read_checkpoint_data
from .networks import ACTOR_GROUPS, LOG_STD_GROUP, PiDogPolicy, policy_kwargs, state_only_batch
from .progress import TrainingProgress
from .smoothness import smoothness_loss
from .symmetry import symmetry_loss


class TrainingInterrupted(Exception):
    """Ctrl-C or a stop request: a checkpoint was saved at ``checkpoint``."""

    def __init__(self, checkpoint: Path, timesteps: int) -> None:
        super().__init__(f"training interrupted at {timesteps} timesteps; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint
        self.timesteps = timesteps


# --- environments -------------------------------------------------------------------------------


class ScaledReward(VecEnvWrapper):
    """PPO learns from ``scale`` x the task's reward (``ppo.reward_scale``).

    The task pays ~2 per control step, so with gamma 0.99 the critic's targets are returns of
    ~200 spread over tens. Measured at scale 1.0: the critic explained ~0 % of the returns'
    variance for the first ~1M env steps (its Adam steps move its output by ~0.1, an estimate).
    Scaled by 0.01 it explained 39-55 % by 50-100k steps (docs/ABLATIONS.md). The policy
    gradient does not change (PPO normalises the advantages per minibatch), and the episode
    returns the logs and reports show stay in the task's units (the VecEnv counts them before
    this wrapper).
    """

    def __init__(self, venv: VecEnv, scale: float) -> None:
        super().__init__(venv)
        self.scale = float(scale)

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, reward, done, infos = self.venv.step_wait()
        return obs, reward * self.scale, done, infos


def make_vec_env(config: Mapping[str, Any], seed: int) -> VecEnv:
    """--n-envs simulated robots as one batched VecEnv (physics on --physics-threads threads).

    Robot i gets seed ``seed + i`` at its first reset (SB3's convention) and continues its own
    random stream through automatic resets. With ``ray.address`` set the robots are simulated
    by Ray actors on other machines (pidog_learning.ray_vec_env; Ray is imported only then).
    """
    threads = config["physics_threads"]
    options = {
        "randomize": True,
        "use_camera": bool(config["use_camera"]),
        "privileged": bool(config["policy"]["privileged_critic"]),
        **dict(config["env"]),
    }
    ray_options = config["ray"]
    venv: VecEnv
    if ray_options.get("address"):
        from .ray_vec_env import RayVecEnv

        venv = RayVecEnv(int(config["n_envs"]), ray_options, **options)
    else:
        from pidog_sim.vec_env import PiDogVecEnv

        venv = PiDogVecEnv(
            int(config["n_envs"]), physics_threads=None if threads in (None, 0) else int(threads), **options
        )
    venv.seed(seed)
    if config["use_camera"]:
        venv = VecTransposeImage(venv)  # channel-first images, as the policy's space declares
    scale = float(config["ppo"]["reward_scale"])
    return venv if scale == 1.0 else ScaledReward(venv, scale)


# --- the model ----------------------------------------------------------------------------------


def ppo_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    ppo = config["ppo"]
    return {
        "learning_rate": float(config["learning_rate"]),
        "n_steps": int(ppo["n_steps"]),
        "batch_size": int(ppo["batch_size"]),
        "n_epochs": int(ppo["n_epochs"]),
        "gamma": float(ppo["gamma"]),
        "gae_lambda": float(ppo["gae_lambda"]),
        "clip_range": float(ppo["clip_range"]),
        "ent_coef": float(ppo["ent_coef"]),
        "vf_coef": float(ppo["vf_coef"]),
        "max_grad_norm": float(ppo["max_grad_norm"]),
        "target_kl": float(ppo["target_kl"]) or None,
        "use_sde": config["policy"]["exploration"] == "gsde",
        "sde_sample_freq": int(ppo["sde_sample_freq"]),
    }


def segment_seed(seed: int, start_timesteps: int) -> int:
    """The seed of a training segment that starts at ``start_timesteps``.

    A resumed run must not replay the first run's episodes and exploration noise: SB3 re-seeds
    the envs, torch and numpy with the PPO seed, so both the envs and PPO get this seed, which
    differs per resume point and is reproducible for the same one.
    """
    if start_timesteps == 0:
        return int(seed)  # a fresh run keeps the user's --seed as is
    return int(np.random.SeedSequence([int(seed), int(start_timesteps)]).generate_state(1)[0] >> 1)


class BCTerm:
    """The DAPG-style terms on demo minibatches: ``weight * MSE(mean action, demo action)`` over
    all demonstrations (``weight`` decays, set by ``AntiForgettingCallback``), plus ``keep_weight *
    MSE`` over those whose command lies in ``keep_commands`` (constant: the prior kept where the
    scripted gait tracks its command).

    ``FinetunePPO.train`` adds them to the PPO loss of every minibatch, before ``backward()`` and
    before gradient clipping, so the weights really are BC:PPO ratios of the actor's gradient.
    """

    def __init__(
        self,
        demos: Demonstrations,
        batch_size: int,
        seed: int,
        keep_weight: float = 0.0,
        keep_commands: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.obs = torch.as_tensor(demos.observations)
        self.actions = torch.as_tensor(demos.actions)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(int(seed))
        self.weight = 0.0
        self.keep_weight = float(keep_weight)
        self.keep_idx = torch.zeros(0, dtype=torch.long)
        if self.keep_weight > 0:
            if keep_commands is None:
                raise ValueError("a kept BC term (keep_weight > 0) needs keep_commands")
            self.keep_idx = torch.as_tensor(commands_within(demos.observations, keep_commands))
            if not len(self.keep_idx):
                raise ValueError(
                    f"finetune.bc_keep_commands {dict(keep_commands)}: no demonstration's command lies "
                    "in it, so the kept BC term has nothing to hold"
                )
        # The MSEs of the last call, by the name train() logs them under (train/<name>).
        self.last_losses: dict[str, float] = {}

    @property
    def last_loss(self) -> float | None:
        """The decaying term's last MSE (None before it was computed)."""
        return self.last_losses.get("bc_loss")

    def _mse(self, policy: PiDogPolicy, pool: torch.Tensor | None, name: str) -> torch.Tensor:
        size = len(self.obs) if pool is None else len(pool)
        idx = torch.randint(size, (self.batch_size,), generator=self.generator)
        if pool is not None:
            idx = pool[idx]
        loss = bc_loss(policy, self.obs[idx], self.actions[idx])
        self.last_losses[name] = float(loss.detach())
        return loss

    def loss(self, policy: PiDogPolicy) -> torch.Tensor | None:
        """The weighted sum of the terms in force, or None if neither is."""
        self.last_losses = {}
        total: torch.Tensor | None = None
        if self.weight > 0:
            total = self.weight * self._mse(policy, None, "bc_loss")
        if self.keep_weight > 0:
            kept = self.keep_weight * self._mse(policy, self.keep_idx, "bc_keep_loss")
            total = kept if total is None else total + kept
        return total


def commands_within(observations: np.ndarray, box: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Indices of the observations whose command (vx m/s, wz rad/s) lies in ``box``'s closed
    ranges ``{"vx": (low, high), "wz": (low, high)}``."""
    command = np.asarray(observations)[:, OBS_SLICES["command"]]
    inside = np.ones(len(command), dtype=bool)
    for axis, key in enumerate(("vx", "wz")):
        low, high = box[key]
        inside &= (command[:, axis] >= low) & (command[:, axis] <= high)
    return np.flatnonzero(inside)


class FinetunePPO(PPO):
    """PPO with our own update loop (``train``) for fine-tuning a BC prior.

    - The actor parameter group steps ``actor_lr_scale`` times the learning rate: the
      exploration std is small, so a full-size Adam step moves the mean by about one std.
    - ``bc_term`` (if set) is part of the loss of every minibatch.
    - Gradients are clipped per parameter group (actor, critic): the critic's error (value loss
      10-225 early on) would otherwise shrink every actor step through one shared norm.
    - ``target_kl`` stops only the actor: once the approximate KL of a minibatch passes
      1.5 x target_kl, the remaining minibatches and epochs train the value function alone.
    - ``actor_frozen`` (critic warm-up): value loss only, the actor is not touched.
    - ``symmetry_weight`` > 0 adds the left/right mirror loss (``symmetry.symmetry_loss``) on
      the minibatch's observations to the actor's loss.
    - ``smoothness_weight`` > 0 adds the spatial smoothness loss (``smoothness.smoothness_loss``,
      perturbations of ``smoothness_sigma`` normaliser stds drawn from ``smoothness_generator``)
      on the minibatch's observations to the actor's loss.
    """

    policy: PiDogPolicy  # build_ppo's policy class
    actor_lr_scale: float = 1.0
    log_std_lr_scale: float = 1.0  # the log-std group's step / the actor's (when it has one)
    actor_frozen: bool = False
    bc_term: BCTerm | None = None
    actor_epochs: int = 0  # of the last update: epochs in which the actor stepped (KL stop, warm-up)
    update_threads: int = 0  # torch threads for the update (0: every core; the rollout uses fewer)
    symmetry_weight: float = 0.0
    smoothness_weight: float = 0.0
    smoothness_sigma: float = 0.0
    smoothness_generator: torch.Generator | None = None

    def _update_learning_rate(self, optimizers: Any) -> None:
        super()._update_learning_rate(optimizers)
        for group in self.policy.optimizer.param_groups:
            if group.get("name") in ACTOR_GROUPS:
                group["lr"] *= self.actor_lr_scale
            if group.get("name") == LOG_STD_GROUP:
                group["lr"] *= self.log_std_lr_scale

    def _value_loss(self, values: torch.Tensor, batch: Any, clip_range_vf: float | None) -> torch.Tensor:
        if clip_range_vf is not None:  # keep the new value within clip_range_vf of the old one
            values = batch.old_values + torch.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
        return torch.nn.functional.mse_loss(batch.returns, values)

    def _step(self, loss: torch.Tensor, critic_only: bool = False) -> None:
        optimizer = self.policy.optimizer
        optimizer.zero_grad(set_to_none=True)  # parameters without a gradient are not stepped
        loss.backward()
        for group in optimizer.param_groups:
            if critic_only and group.get("name") in ACTOR_GROUPS:
                # A camera policy's image encoder is shared with the critic but belongs to the
                # actor: the value loss must not move it while the actor is frozen or stopped.
                for param in group["params"]:
                    param.grad = None
                continue
            torch.nn.utils.clip_grad_norm_(group["params"], self.max_grad_norm)
        optimizer.step()

    def train(self) -> None:
        """One PPO update on the rollout buffer, on ``update_threads`` torch threads: the
        simulator is idle meanwhile, so the update may use every core."""
        with torch_threads(self.update_threads):
            self._update()

    def _update(self) -> None:
        """SB3's PPO update with the changes listed in the class docstring."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        # SB3 types these as float | Schedule; _setup_model made them schedules.
        clip_range = float(cast(Schedule, self.clip_range)(self._current_progress_remaining))
        clip_range_vf = (
            None
            if self.clip_range_vf is None
            else float(cast(Schedule, self.clip_range_vf)(self._current_progress_remaining))
        )
        stats: dict[str, list[float]] = {
            "policy_gradient_loss": [],
            "value_loss": [],
            "entropy_loss": [],
            "approx_kl": [],
            "clip_fraction": [],
            "bc_loss": [],
            "bc_keep_loss": [],
            "symmetry_loss": [],
            "smoothness_loss": [],
        }
        actor_active = not self.actor_frozen
        actor_epochs = 0
        loss = torch.zeros(())
        observations: Any = None
        for _epoch in range(self.n_epochs):
            stepped_actor = False
            for batch in self.rollout_buffer.get(self.batch_size):
                observations = batch.observations
                if not actor_active:
                    value_loss = self._value_loss(
                        self.policy.predict_values(batch.observations).flatten(), batch, clip_range_vf
                    )
                    stats["value_loss"].append(float(value_loss.detach()))
                    loss = self.vf_coef * value_loss
                    self._step(loss, critic_only=True)
                    continue
                values, log_prob, entropy = self.policy.evaluate_actions(batch.observations, batch.actions)
                value_loss = self._value_loss(values.flatten(), batch, clip_range_vf)
                stats["value_loss"].append(float(value_loss.detach()))
                log_ratio = log_prob - batch.old_log_prob
                with torch.no_grad():  # Schulman's low-variance estimator of KL(old || new)
                    approx_kl = float(torch.mean(torch.expm1(log_ratio) - log_ratio))
                stats["approx_kl"].append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    # The actor moved far enough for this rollout; the critic has not converged.
                    actor_active = False
                    loss = self.vf_coef * value_loss
                    self._step(loss, critic_only=True)
                    continue
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_ratio)
                surrogate = torch.min(
                    advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                )
                policy_loss = -surrogate.mean()
                entropy_loss = -torch.mean(entropy) if entropy is not None else torch.mean(log_prob)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                bc = self.bc_term.loss(self.policy) if self.bc_term is not None else None
                if bc is not None:
                    assert self.bc_term is not None  # bc came from it
                    loss = loss + bc
                    for name, value in self.bc_term.last_losses.items():
                        stats[name].append(value)
                if self.symmetry_weight > 0:
                    symmetry = symmetry_loss(self.policy, batch.observations)
                    loss = loss + self.symmetry_weight * symmetry
                    stats["symmetry_loss"].append(float(symmetry.detach()))
                if self.smoothness_weight > 0:
                    smooth = smoothness_loss(
                        self.policy, batch.observations, self.smoothness_sigma, self.smoothness_generator
                    )
                    loss = loss + self.smoothness_weight * smooth
                    stats["smoothness_loss"].append(float(smooth.detach()))
                stats["policy_gradient_loss"].append(float(policy_loss.detach()))
                stats["entropy_loss"].append(float(entropy_loss.detach()))
                stats["clip_fraction"].append(float(torch.mean((torch.abs(ratio - 1) > clip_range).float())))
                self._step(loss)
                stepped_actor = True
            actor_epochs += int(stepped_actor)
            self._n_updates += 1
        self.actor_epochs = actor_epochs

        for name, series in stats.items():
            if series:
                self.logger.record(f"train/{name}", float(np.mean(series)))
        self.logger.record("train/loss", float(loss.detach()))
        self.logger.record("train/actor_epochs", actor_epochs)
        self.logger.record(
            "train/explained_variance",
            float(
                explained_variance(
                    self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
                )
            ),
        )
        with torch.no_grad():
            self.logger.record("train/std", self.policy.action_std(observations))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def build_ppo(
    config: Mapping[str, Any],
    env: VecEnv,
    tensorboard_dir: str | os.PathLike[str] | None,
    metadata: Mapping[str, Any],
    seed: int | None = None,
) -> FinetunePPO:
    """PPO over PiDogPolicy; ``metadata`` is saved into every checkpoint as plain JSON.

    ``seed`` (default: the config's) seeds torch, numpy and the envs (SB3 re-seeds them);
    a resumed run passes ``segment_seed`` so it does not replay the first run.
    """
    model = FinetunePPO(
        PiDogPolicy,
        env,
        policy_kwargs=policy_kwargs(config),
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
        seed=int(config["seed"]) if seed is None else int(seed),
        device="cpu",
        verbose=0,
        **ppo_arguments(config),
    )
    # --no-bc-init is plain PPO: no prior to protect, so one learning rate for all.
    model.actor_lr_scale = 1.0 if config["no_bc_init"] else float(config["finetune"]["actor_lr_scale"])
    model.update_threads = int(config["update_threads"])
    log_std_lr_scale = 1.0 if config["no_bc_init"] else float(config["finetune"]["log_std_lr_scale"])
    if log_std_lr_scale != 1.0:  # only then: runs without it keep the two groups they resume with
        model.policy.separate_log_std_group()
        model.log_std_lr_scale = log_std_lr_scale
    # State policies only: validate_config refuses both terms with the camera.
    model.symmetry_weight = float(config["ppo"]["symmetry_loss_weight"])
    model.smoothness_weight = float(config["ppo"]["smoothness_loss_weight"])
    model.smoothness_sigma = float(config["ppo"]["smoothness_sigma"])
    # Its own stream: the perturbations do not shift PPO's minibatch order or the BC batches.
    model.smoothness_generator = torch.Generator().manual_seed(
        int(config["seed"] if seed is None else seed) + 7
    )
    setattr(model, METADATA_ATTRIBUTE, dict(metadata))
    return model


def start_from(
    model: FinetunePPO, source: PiDogPolicy, initial_log_std: float, observations: np.ndarray | None = None
) -> None:
    """Copy the BC policy into PPO's (exact, normaliser included); set the exploration noise to
    exp(``initial_log_std``) action units (gSDE: on average over ``observations``, the
    demonstrations' states; needed for gSDE)."""
    # Everything but the log-std, which is set below (and whose shape depends on the noise
    # kind: BC weights trained under either kind start PPO under either).
    weights = {k: v for k, v in source.state_dict().items() if k != "log_std"}
    try:
        missing, unexpected = model.policy.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise ValueError(f"the BC policy does not fit PPO's network: {exc}") from exc
    if missing != ["log_std"] or unexpected:
        raise ValueError(
            f"the BC policy does not fit PPO's network: missing {missing}, unexpected {unexpected}"
        )
    set_exploration(model.policy, initial_log_std, observations)


SCALE_STATES = 4096  # demonstration states gSDE's noise is scaled on


def set_exploration(policy: PiDogPolicy, log_std: float, observations: np.ndarray | None) -> None:
    """``policy.set_action_std``; gSDE scales on deployable observations (N, OBS_DIM)."""
    if not policy.use_sde:
        policy.set_action_std(log_std)  # the log-std itself: no states needed
        return
    if observations is None:
        raise ValueError("gSDE's noise is scaled on observations: pass the demonstrations' states")
    if len(observations) > SCALE_STATES:  # plenty for an RMS
        observations = observations[np.linspace(0, len(observations) - 1, SCALE_STATES).astype(int)]
    states = torch.as_tensor(observations, dtype=torch.float32)
    policy.set_action_std(log_std, state_only_batch(policy, states))


def checkpoint_timesteps(checkpoint: str | os.PathLike[str]) -> int:
    """Timesteps a checkpoint was saved at (plain JSON; nothing is unpickled)."""
    return int(read_checkpoint_data(checkpoint).get("num_timesteps", 0))


def restore(model: PPO, checkpoint: str | os.PathLike[str]) -> None:
    """Resume: weights + optimizer state + timestep count from one of our checkpoints."""
    model.set_parameters(str(checkpoint), exact_match=True, device="cpu")
    data = read_checkpoint_data(checkpoint)  # plain JSON fields only; nothing is unpickled
    model.num_timesteps = int(data.get("num_timesteps", 0))
    model._n_updates = int(data.get("_n_updates", 0))


def save_checkpoint(model: PPO, path: str | os.PathLike[str]) -> Path:
    """model.save to a temp file in the same folder, then os.replace (never a torn zip)."""
    with atomic_output(path) as tmp:
        model.save(tmp)
    return Path(path)


# --- callbacks ----------------------------------------------------------------------------------


class AntiForgettingCallback(BaseCallback):
    """Critic warm-up (actor frozen), the decaying DAPG-style BC term, and the hand-over.

    Everything is a function of the timestep count at the end of a rollout (saved in
    checkpoints), so a resumed run continues it, whatever its --n-envs:

    - warm-up: the actor is frozen while ``t <= warmup_timesteps``;
    - BC weight: ``w0 * decay ** ((t - warmup) / decay_timesteps)`` (continuous in t);
    - hand-over: once the weight is below ``handover_weight`` the actor steps at
      ``handover_lr_scale`` x the learning rate, and at that moment its log-std is raised to at
      least ``handover_log_std`` (more exploration; from then on PPO owns it).
    """

    model: FinetunePPO  # attached to the pipeline's FinetunePPO

    def __init__(
        self,
        warmup_timesteps: int,
        demos: Demonstrations | None,
        bc_weight: float,
        bc_decay: float,
        batch_size: int,
        seed: int,
        decay_timesteps: int = 4096,
        handover_weight: float = 0.0,
        handover_lr_scale: float = 1.0,
        handover_log_std: float | None = None,
        min_weight: float = 0.0,
        keep_weight: float = 0.0,
        keep_commands: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.min_weight = min_weight
        self.warmup_timesteps = warmup_timesteps
        have_demos = demos is not None and len(demos) > 0
        self.bc_weight0 = bc_weight if have_demos else 0.0
        keep_weight = keep_weight if have_demos else 0.0
        self.bc_decay = bc_decay
        self.decay_timesteps = decay_timesteps
        self.handover_weight = handover_weight
        self.handover_lr_scale = handover_lr_scale
        self.handover_log_std = handover_log_std
        # Either weight > 0 only with demonstrations.
        self.term = (
            BCTerm(cast(Demonstrations, demos), batch_size, seed, keep_weight, keep_commands)
            if self.bc_weight0 > 0 or keep_weight > 0
            else None
        )
        self.base_lr_scale: float | None = None  # the run's actor_lr_scale before any hand-over
        self.weight = 0.0
        self.frozen = False
        self.handed_over = False

    @property
    def policy(self) -> PiDogPolicy:
        return self.model.policy

    @property
    def last_bc_loss(self) -> float | None:
        return None if self.term is None else self.term.last_loss

    def _on_training_start(self) -> None:
        if self.policy.uses_camera and self.term is not None:
            # Demonstrations carry no images; a BC term on black images would teach the
            # camera branch the wrong thing once its gate opens.
            self.bc_weight0, self.term = 0.0, None
        if self.base_lr_scale is None:  # a second learn() must not take a released scale as base
            self.base_lr_scale = self.model.actor_lr_scale
        self.model.bc_term = self.term
        self._update_schedule(self.model.num_timesteps, first=True)

    def _on_training_end(self) -> None:
        self.model.actor_frozen = False
        self.model.bc_term = None

    def _on_rollout_end(self) -> None:  # runs right before PPO.train() on this rollout
        self._update_schedule(self.model.num_timesteps)
        self.logger.record("finetune/actor_frozen", float(self.frozen))
        self.logger.record("finetune/bc_weight", self.weight)
        self.logger.record("finetune/handed_over", float(self.handed_over))
        if self.last_bc_loss is not None:
            self.logger.record("finetune/bc_loss", self.last_bc_loss)

    def _on_step(self) -> bool:
        return True

    def _decayed_weight(self, timesteps: int) -> float:
        return self.bc_weight0 * self.bc_decay ** ((timesteps - self.warmup_timesteps) / self.decay_timesteps)

    def bc_weight_at(self, timesteps: int) -> float:
        """The BC weight for the update on the rollout that ends at ``timesteps`` (0 below the
        floor: the term is not computed)."""
        if timesteps <= self.warmup_timesteps:
            return 0.0
        weight = self._decayed_weight(timesteps)
        return weight if weight >= self.min_weight else 0.0

    def _past_handover(self, timesteps: int) -> bool:
        # The decayed weight, not the floored one: the floor saves compute and must not move
        # the hand-over earlier.
        return timesteps > self.warmup_timesteps and self._decayed_weight(timesteps) < self.handover_weight

    def _update_schedule(self, t: int, first: bool = False) -> None:
        self.frozen = t <= self.warmup_timesteps  # experience up to the warm-up: critic only
        self.model.actor_frozen = self.frozen
        self.weight = self.bc_weight_at(t)
        if self.term is not None:
            self.term.weight = self.weight
        handed_over = self._past_handover(t)
        if handed_over and not first and not self.handed_over and self.handover_log_std is not None:
            # Only at the crossing: a resumed run past it has the raised log-std in its checkpoint.
            with torch.no_grad():
                self.policy.log_std.clamp_(min=self.handover_log_std)
        self.handed_over = handed_over
        assert self.base_lr_scale is not None  # _on_training_start set it before the first call
        self.model.actor_lr_scale = self.handover_lr_scale if handed_over else self.base_lr_scale


class NoiseAnnealCallback(BaseCallback):
    """Lowers the exploration noise over the end of training: a ceiling on the actor's log-std
    that falls linearly from ``start_log_std`` at ``start_timesteps`` to ``final_log_std`` at
    ``total_timesteps`` (the log-std may go lower on its own, never higher).

    Why: PPO tunes the mean action for the noisy policy it runs, and the robot runs the mean.
    ``benchmarks/bench_deploy_gap.py`` measures the gap (docs/benchmarks/deploy_gap.md): the
    shipped policy, trained at std 0.22, overshoots slow commands without the noise and tracks
    them with it. Training that ends at little noise tunes the mean for the deterministic policy
    (docs/ABLATIONS.md: it also cost top speed, so it is off by default). Applied when a rollout starts,
    so each rollout is collected with the std it is trained on; a function of timesteps, so a
    resumed run continues it.
    """

    model: PPO

    def __init__(
        self, start_timesteps: int, total_timesteps: int, start_log_std: float, final_log_std: float
    ) -> None:
        super().__init__()
        self.start_timesteps = int(start_timesteps)
        self.total_timesteps = int(total_timesteps)
        self.start_log_std = float(start_log_std)
        self.final_log_std = float(final_log_std)

    def ceiling(self, timesteps: int) -> float:
        if timesteps <= self.start_timesteps:
            return float("inf")
        span = max(1, self.total_timesteps - self.start_timesteps)
        fraction = min(1.0, (timesteps - self.start_timesteps) / span)
        return self.start_log_std + fraction * (self.final_log_std - self.start_log_std)

    def _on_rollout_start(self) -> None:
        ceiling = self.ceiling(self.model.num_timesteps)
        if np.isfinite(ceiling):
            with torch.no_grad():
                self.model.policy.log_std.clamp_(max=ceiling)

    def _on_step(self) -> bool:
        return True


class PeriodicCallback(BaseCallback):
    """Calls ``fn(model)`` whenever the timestep count crosses a multiple of ``freq``, unless
    it has reached ``until`` (for work the caller does after training anyway)."""

    model: PPO

    def __init__(self, freq: int, fn: Callable[[PPO], None], until: int | None = None) -> None:
        super().__init__()
        self.freq = freq
        self.fn = fn
        self.until = until
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.model.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            self._next = (self.model.num_timesteps // self.freq + 1) * self.freq
            if self.until is None or self.model.num_timesteps < self.until:
                self.fn(self.model)
        return True


class ProgressCallback(BaseCallback):
    """Records the training return per rollout, reports it, and honours a stop request."""

    def __init__(
        self,
        report: Callable[[dict[str, Any]], None],
        history: list[dict[str, float]],
        stop_event: threading.Event | None,
    ) -> None:
        super().__init__()
        self.report = report
        self.history = history
        self.stop_event = stop_event

    def _on_step(self) -> bool:
        return not (self.stop_event is not None and self.stop_event.is_set())

    def _on_rollout_end(self) -> None:
        assert self.model.ep_info_buffer is not None  # learn() sets it up before any callback runs
        episodes = list(self.model.ep_info_buffer)
        entry: dict[str, Any] = {"timesteps": self.model.num_timesteps}
        if episodes:
            entry["episode_return"] = float(sum(e["r"] for e in episodes) / len(episodes))
            self.history.append(entry)
        self.report(
            {"phase": "ppo", "timesteps": self.model.num_timesteps, "reward": entry.get("episode_return")}
        )


def finetune(
    model: PPO,
    total_timesteps: int,
    callbacks: list[BaseCallback],
    checkpoint_path: Path,
    progress_bar: bool,
    stop_event: threading.Event | None = None,
) -> PPO:
    """Train until ``total_timesteps`` (counted from 0 across resumes); Ctrl-C/stop saves."""
    remaining = total_timesteps - model.num_timesteps
    if remaining > 0:
        try:
            model.learn(
                total_timesteps=remaining,
                # Our bar counts env steps and shows their rate; off a terminal it logs lines.
                callback=[*callbacks, TrainingProgress(show_bar=progress_bar)],
                reset_num_timesteps=False,
                tb_log_name="ppo",
            )
        except KeyboardInterrupt:
            save_checkpoint(model, checkpoint_path)
            raise TrainingInterrupted(checkpoint_path, model.num_timesteps) from None
        if stop_event is not None and stop_event.is_set():
            save_checkpoint(model, checkpoint_path)
            raise TrainingInterrupted(checkpoint_path, model.num_timesteps)
    save_checkpoint(model, checkpoint_path)
    return model
