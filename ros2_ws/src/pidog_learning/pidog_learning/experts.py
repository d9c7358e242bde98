"""Demonstrations: the scripted trot (or a trained expert) rolled out in the randomised sim."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pidog_description.spec import CONTROL_DT
from pidog_sim.controllers import TrotController
from pidog_sim.env import PiDogEnv

from .demonstrations import Demonstrations

Controller = Callable[[Any], np.ndarray]


class ExpertError(ValueError):
    """An --expert-model that cannot be used."""


def load_expert(path: str | None) -> tuple[Controller, str, bool]:
    """(controller, description, needs_camera) for --expert-model, or the scripted trot."""
    if path is None:
        return TrotController(), "scripted trot (pidog_sim.controllers.TrotController)", False
    p = Path(path)
    if not p.is_file():
        raise ExpertError(f"expert model not found: {p}")
    if p.suffix == ".zip":
        from .export import load_checkpoint_policy, policy_controller

        policy = load_checkpoint_policy(p)
        return policy_controller(policy), f"PPO checkpoint {p}", policy.uses_camera
    if p.suffix == ".onnx":
        from pidog_control.policy_runtime import OnnxPolicy

        try:
            return OnnxPolicy(str(p)).act, f"ONNX policy {p}", False
        except Exception as exc:
            raise ExpertError(f"cannot use {p} as an expert: {exc}") from exc
    raise ExpertError(f"expert model must be a pipeline checkpoint .zip or a policy .onnx, got {p}")


def collect_demonstrations(
    expert: Controller,
    n_episodes: int,
    episode_seconds: float,
    seed: int,
    env_kwargs: Mapping[str, Any] | None = None,
    action_noise: float = 0.0,
    drop_falls: bool = True,
    use_camera: bool = False,
    source: str = "expert",
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Demonstrations:
    """Roll ``expert`` out for ``n_episodes`` randomised episodes and record (obs, action).

    With ``action_noise`` > 0 the executed action is perturbed (DART) but the recorded label
    is the expert's clean action for the observation it saw, so BC learns to recover.
    Only the 26-value state is recorded (DESIGN.md §5 format).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    kwargs = {**dict(env_kwargs or {}), "episode_seconds": episode_seconds}
    env = PiDogEnv(randomize=True, use_camera=use_camera, **kwargs)
    rng = np.random.default_rng(seed)
    parts: list[Demonstrations] = []
    speeds: list[float] = []
    falls = 0
    try:
        bar = tqdm(range(n_episodes), desc="demonstrations", unit="episode", disable=not progress)
        for ep in bar:
            if should_stop is not None and should_stop():
                raise InterruptedError("demonstration collection stopped on request")
            obs, info = env.reset(seed=seed + ep)
            if hasattr(expert, "reset"):
                expert.reset()
            states, actions = [], []
            done = False
            while not done:
                action = np.asarray(expert(obs), dtype=np.float32).reshape(-1)
                states.append(obs["state"] if use_camera else obs)
                actions.append(np.clip(action, -1.0, 1.0))
                executed = (
                    action + rng.normal(0.0, action_noise, action.shape) if action_noise > 0 else action
                )
                obs, _reward, terminated, truncated, info = env.step(executed)
                done = terminated or truncated
            steps = len(actions)
            speeds.append(info["distance"] / (steps * CONTROL_DT))
            if info["fell"]:
                falls += 1
                if drop_falls:
                    continue
            starts = np.zeros(steps, dtype=bool)
            starts[0] = True
            parts.append(Demonstrations(np.array(states), np.array(actions), starts))
            bar.set_postfix(falls=falls, speed=f"{np.mean(speeds):.3f} m/s")
    finally:
        env.close()
    if not parts:
        raise ExpertError(
            f"the expert fell in all {n_episodes} demonstration episodes: nothing to learn from"
        )
    metadata = {
        "source": source,
        "episodes_recorded": len(parts),
        "episodes_run": n_episodes,
        "episodes_fell": falls,
        "falls_dropped": bool(drop_falls),
        "episode_seconds": episode_seconds,
        "seed": seed,
        "action_noise": action_noise,
        "env": dict(kwargs),
        "mean_forward_speed_mps": float(np.mean(speeds)),
    }
    return Demonstrations.concatenate(parts, metadata=metadata)
