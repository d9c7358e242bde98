"""PPO fine-tuning of the BC policy, with measures against forgetting the prior.

- The PPO policy is the same ``PiDogPolicy`` BC trained; its whole state_dict (normaliser
  included) is loaded, so deterministic actions are identical at step 0.
- Critic warm-up: the BC critic is untrained, so for the first ``critic_warmup_timesteps``
  the actor's parameters are frozen and only the value function learns; noisy advantages
  from a random critic would otherwise push the good prior around.
- A deliberate initial log-std (``policy.initial_log_std``): enough exploration to improve,
  not so much that the trot falls apart.
- Small actor steps: the actor's parameter group steps at ``finetune.actor_lr_scale`` times
  the learning rate (``FinetunePPO``), and ``ppo.target_kl`` stops an update early.
- DAPG-style BC term: ``w_k * MSE(mean action, demo action)`` on a demo minibatch is added to
  every PPO gradient step, with ``w_k = w_0 * decay^k`` over PPO updates ``k`` after warm-up.
  It is added through an optimizer step pre-hook, so SB3's PPO.train is used unchanged.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecTransposeImage

from .atomic import atomic_output
from .bc import bc_loss
from .demonstrations import Demonstrations
from .export import METADATA_ATTRIBUTE, read_checkpoint_data
from .networks import PiDogPolicy, policy_kwargs


class TrainingInterrupted(Exception):
    """Ctrl-C or a stop request: a checkpoint was saved at ``checkpoint``."""

    def __init__(self, checkpoint: Path, timesteps: int) -> None:
        super().__init__(f"training interrupted at {timesteps} timesteps; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint
        self.timesteps = timesteps


# --- environments -------------------------------------------------------------------------------


def _make_env(env_kwargs: dict[str, Any], use_camera: bool, subprocess: bool, threads: int) -> gym.Env:
    if subprocess:
        # Ctrl-C belongs to the learner, which saves a checkpoint and then closes the workers;
        # a worker dying on the same SIGINT would break that.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(threads)
    from pidog_sim.env import PiDogEnv

    return Monitor(PiDogEnv(randomize=True, use_camera=use_camera, **env_kwargs))


def make_vec_env(config: Mapping[str, Any], seed: int) -> VecEnv:
    """--n-envs PiDogEnv copies: SubprocVecEnv, or DummyVecEnv for one (no process overhead)."""
    n = int(config["n_envs"])
    kwargs = dict(config["env"])
    use_camera = bool(config["use_camera"])
    threads = int(config["torch_threads"])

    fns: list[Callable[[], gym.Env]] = [lambda: _make_env(kwargs, use_camera, n > 1, threads)] * n
    venv: VecEnv = SubprocVecEnv(fns) if n > 1 else DummyVecEnv(fns)
    venv.seed(seed)  # env i gets seed + i at its first reset
    if use_camera:
        venv = VecTransposeImage(venv)  # channel-first images, as the policy's space declares
    return venv


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
    }


class FinetunePPO(PPO):
    """PPO whose actor parameter group steps ``actor_lr_scale`` times the learning rate.

    The exploration std is small (the trot tolerates little noise), so a full-size Adam step
    moves the mean by about one std: KL and clip fraction explode on the first minibatch and
    the prior is lost. The critic, untrained after BC, keeps the full learning rate.
    """

    actor_lr_scale: float = 1.0

    def _update_learning_rate(self, optimizers: Any) -> None:
        super()._update_learning_rate(optimizers)
        for group in self.policy.optimizer.param_groups:
            if group.get("name") == "actor":
                group["lr"] *= self.actor_lr_scale


def build_ppo(
    config: Mapping[str, Any],
    env: VecEnv,
    tensorboard_dir: str | os.PathLike[str] | None,
    metadata: Mapping[str, Any],
) -> PPO:
    """PPO over PiDogPolicy; ``metadata`` is saved into every checkpoint as plain JSON."""
    model = FinetunePPO(
        PiDogPolicy,
        env,
        policy_kwargs=policy_kwargs(config),
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
        seed=int(config["seed"]),
        device="cpu",
        verbose=0,
        **ppo_arguments(config),
    )
    # --no-bc-init is plain PPO: no prior to protect, so one learning rate for all.
    model.actor_lr_scale = 1.0 if config["no_bc_init"] else float(config["finetune"]["actor_lr_scale"])
    setattr(model, METADATA_ATTRIBUTE, dict(metadata))
    return model


def start_from(model: FinetunePPO, source: PiDogPolicy, initial_log_std: float) -> None:
    """Copy the BC policy into PPO's (exact, normaliser included); set the exploration noise."""
    model.policy.load_state_dict(source.state_dict(), strict=True)
    with torch.no_grad():
        model.policy.log_std.fill_(initial_log_std)


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
    """Critic warm-up (actor frozen) and the decaying DAPG-style BC term."""

    def __init__(
        self,
        warmup_timesteps: int,
        demos: Demonstrations | None,
        bc_weight: float,
        bc_decay: float,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.warmup_timesteps = warmup_timesteps
        self.bc_weight0 = bc_weight if demos is not None and len(demos) else 0.0
        self.bc_decay = bc_decay
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.obs = torch.as_tensor(demos.observations) if demos is not None else None
        self.actions = torch.as_tensor(demos.actions) if demos is not None else None
        self.weight = 0.0
        self.frozen = False
        self._hook: Any = None
        self.last_bc_loss: float | None = None

    @property
    def policy(self) -> PiDogPolicy:
        return self.model.policy

    def _on_training_start(self) -> None:
        if self.policy.uses_camera and self.bc_weight0 > 0:
            # Demonstrations carry no images; a BC term on black images would teach the
            # camera branch the wrong thing once its gate opens.
            self.bc_weight0 = 0.0
        self._hook = self.policy.optimizer.register_step_pre_hook(self._add_bc_gradient)
        self._update_schedule()

    def _on_training_end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._set_frozen(False)

    def _on_rollout_end(self) -> None:  # runs right before PPO.train() on this rollout
        self._update_schedule()
        self.logger.record("finetune/actor_frozen", float(self.frozen))
        self.logger.record("finetune/bc_weight", self.weight)
        if self.last_bc_loss is not None:
            self.logger.record("finetune/bc_loss", self.last_bc_loss)

    def _on_step(self) -> bool:
        return True

    def _update_schedule(self) -> None:
        # Called with num_timesteps at the end of a rollout, right before PPO trains on it.
        # Both follow num_timesteps (saved in checkpoints), so a resumed run continues them.
        t = self.model.num_timesteps
        self._set_frozen(t <= self.warmup_timesteps)  # experience up to the warm-up: critic only
        rollout = self.model.n_steps * self.model.n_envs
        updates_before = max(0, (t - self.warmup_timesteps - 1) // rollout)  # 0 for the first actor update
        self.weight = 0.0 if self.frozen else self.bc_weight0 * self.bc_decay**updates_before

    def _set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        for param in self.policy.actor_parameters():
            param.requires_grad_(not frozen)

    def _add_bc_gradient(self, _optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        if self.weight <= 0 or self.obs is None:
            return
        idx = torch.randint(len(self.obs), (self.batch_size,), generator=self.generator)
        with torch.enable_grad():
            loss = bc_loss(self.policy, self.obs[idx], self.actions[idx])
            (self.weight * loss).backward()  # accumulates onto PPO's gradients: one joint step
        self.last_bc_loss = float(loss.detach())


class PeriodicCallback(BaseCallback):
    """Calls ``fn(model)`` whenever the timestep count crosses a multiple of ``freq``."""

    def __init__(self, freq: int, fn: Callable[[PPO], None]) -> None:
        super().__init__()
        self.freq = freq
        self.fn = fn
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.model.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            self._next = (self.model.num_timesteps // self.freq + 1) * self.freq
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
                callback=callbacks,
                reset_num_timesteps=False,
                tb_log_name="ppo",
                progress_bar=progress_bar,
            )
        except KeyboardInterrupt:
            save_checkpoint(model, checkpoint_path)
            raise TrainingInterrupted(checkpoint_path, model.num_timesteps) from None
        if stop_event is not None and stop_event.is_set():
            save_checkpoint(model, checkpoint_path)
            raise TrainingInterrupted(checkpoint_path, model.num_timesteps)
    save_checkpoint(model, checkpoint_path)
    return model
