"""Demonstrations: the scripted trot (or a trained expert) rolled out in the randomised sim."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pidog_description.spec import CONTROL_DT, OBS_SLICES, action_filter_alpha
from pidog_sim.config import DEFAULT_SIM_CONFIG
from pidog_sim.controllers import TrotController
from pidog_sim.rollout import EpisodeRecord, controller_action_filter, run_episodes

from .demonstrations import LABELS_FILTER_KEY, Demonstrations, relabel_for_filter

Controller = Callable[[Any], np.ndarray]


class ExpertError(ValueError):
    """An --expert-model that cannot be used."""


FORWARD_RATIO_MIN_COMMAND = 0.1  # m/s: slower forward commands say little about walking
# Below this share of its commanded forward speed an expert's demonstrations show BC a gait that
# hardly moves. The scripted trot walks ~0.34 of it on the default training robots and 0.03 on a
# 0.25 N·m, 1.15 kg robot with 2 steps of latency (docs/SYSID.md, "Closing the loop").
FORWARD_RATIO_WARN = 0.1


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

    The episodes run as one batch (``pidog_sim.rollout.run_episodes``); episode ``k`` meets the
    robot that ``PiDogEnv.reset(seed=seed + k)`` builds. With ``action_noise`` > 0 the executed
    action is perturbed (DART, a noise stream per episode) but the recorded label is the
    expert's clean action for the observation it saw, so BC learns to recover.
    Only the 26-value state is recorded (DESIGN.md §5 format).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    kwargs = {**dict(env_kwargs or {}), "episode_seconds": episode_seconds}
    run_cutoff = float(kwargs.get("action_filter_hz", DEFAULT_SIM_CONFIG["action_filter_hz"]))
    run_alpha = action_filter_alpha(run_cutoff)
    expert_alpha = run_alpha
    cutoff = controller_action_filter(expert)
    if cutoff is not None:
        # A trained expert walks behind the action filter it was trained with, whatever filter
        # this run trains behind: its demonstrations are its own gait (the scripted gaits name
        # none and run behind the run's). Its labels are relabelled below for the run's filter.
        kwargs["action_filter_hz"] = cutoff
        expert_alpha = action_filter_alpha(cutoff)
    bar = tqdm(total=n_episodes, desc="demonstrations", unit="episode", disable=not progress)
    falls = 0

    def finished(record: EpisodeRecord) -> None:
        # The episodes run together, so the first to finish are the falls (they end early):
        # the bar counts them but gives no running speed, which would read low until the end.
        nonlocal falls
        falls += int(record.fell)
        bar.update()
        bar.set_postfix(falls=falls)

    try:
        records = run_episodes(
            expert,
            [seed + k for k in range(n_episodes)],
            env_config=kwargs,
            record=True,
            action_noise=action_noise,
            use_camera=use_camera,
            on_episode=finished,
            should_stop=should_stop,
        )
    except InterruptedError:
        raise InterruptedError("demonstration collection stopped on request") from None
    finally:
        bar.close()
    parts: list[Demonstrations] = []
    clipped = 0  # relabelled samples the run's filter cannot follow: their labels clipped
    for record in records:
        if record.fell and drop_falls:
            continue
        starts = np.zeros(record.steps, dtype=bool)
        starts[0] = True
        states, actions = np.array(record.states), np.array(record.actions)
        if expert_alpha != run_alpha:
            actions, record_clipped = relabel_for_filter(states, actions, expert_alpha, run_alpha)
            clipped += record_clipped
        parts.append(Demonstrations(states, actions, starts))
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
        "env": dict(kwargs),  # as the expert walked: behind its own filter, if it names one
        LABELS_FILTER_KEY: run_cutoff,  # the labels: for the run's filter
        "labels_clipped": clipped,  # samples relabelled for it that lay outside [-1, 1]
        "mean_forward_speed_mps": float(np.mean([r.distance / (r.steps * CONTROL_DT) for r in records])),
        "forward_ratio": _finite_or_none(forward_ratio(records)),  # None: no forward commands
    }
    return Demonstrations.concatenate(parts, metadata=metadata)


def forward_ratio(records: list[EpisodeRecord], min_command: float = FORWARD_RATIO_MIN_COMMAND) -> float:
    """How much of its commanded forward speed the expert walked: its heading-frame speed summed
    over the steps commanded at least ``min_command`` m/s forward, over those commands summed
    (falls included). NaN without such steps. The scripted trot walks about a third of it over
    training's sampled commands (it tops out at ~0.14 m/s); on a robot it cannot carry, almost
    none."""
    commanded, walked = 0.0, 0.0
    for record in records:
        if not record.forward or not record.states:  # nothing scored, or not recorded
            continue
        steps = len(record.forward)
        vx = np.asarray(record.states)[-steps:, OBS_SLICES["command"]][:, 0]
        moving = vx >= min_command
        commanded += float(vx[moving].sum())
        walked += float(np.asarray(record.forward)[moving].sum())
    return walked / commanded if commanded > 0 else float("nan")


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: the demonstrations' metadata says None instead."""
    return value if np.isfinite(value) else None


def weak_expert_warning(description: str, ratio: float | None) -> str | None:
    """A warning when the expert hardly walked on the robots it was shown (None otherwise, and
    when it was never commanded forward: ``ratio`` None or NaN)."""
    if ratio is None or not ratio < FORWARD_RATIO_WARN:
        return None
    return (
        f"warning: the {description} walked {ratio:.0%} of its commanded forward speed in the "
        "demonstrations (the scripted trot on the default robots: ~34 %), so BC will clone a gait "
        "that hardly moves and PPO starts from it. On a weak or heavy robot, demonstrations from a "
        "policy that walks there do better: --expert-model models/policies/pidog_walk.onnx "
        '(docs/SYSID.md, "Closing the loop").'
    )
