"""Behavioural cloning on the PPO policy class itself (no `imitation` library).

BC fits the Gaussian mean of a ``PiDogPolicy`` to the demonstrated actions (MSE) with an
episode-wise validation split; the observation normaliser is computed from the training
split and stored inside the policy. The best-validation weights are kept. The saved
``bc_pretrained_policy.pth`` is a plain dict (state_dict + JSON-plain metadata) that loads
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pidog_description.spec import ACTION_DIM

from .atomic import atomic_output
from .demonstrations import Demonstrations
from .networks import POLICY_FORMAT, PiDogPolicy, make_policy, policy_layout, state_only_batch
from .normalization import observation_stats


class PretrainedModelError(ValueError):
    """A pretrained model that is missing, corrupt, or made for another network or layout."""


@dataclass
class BCResult:
    policy: PiDogPolicy
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0


def split_episodes(
    demos: Demonstrations, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices for training and validation, split by whole episodes.

    Consecutive samples of one episode are nearly identical, so a per-sample split would
    validate on training data. With a single episode its last part is held out instead.
    """
    n = len(demos)
    if n < 2:
        raise ValueError(f"BC needs at least 2 demonstration samples, got {n}")
    starts = np.flatnonzero(demos.episode_starts)
    bounds = np.append(starts, n)
    episodes = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if validation_fraction <= 0:
        return np.arange(n), np.arange(0)
    if len(episodes) == 1:
        cut = max(1, int(round(n * (1 - validation_fraction))))
        cut = min(cut, n - 1)
        return np.arange(cut), np.arange(cut, n)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(episodes))
    n_val = min(len(episodes) - 1, max(1, int(round(len(episodes) * validation_fraction))))
    val = np.concatenate([episodes[i] for i in order[:n_val]])
    train = np.concatenate([episodes[i] for i in order[n_val:]])
    return train, val


def bc_loss(policy: PiDogPolicy, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the policy's mean action and the demonstrated action."""
    return torch.mean((policy.mean_actions(state_only_batch(policy, obs)) - actions) ** 2)


def train_bc(
    demos: Demonstrations,
    policy: PiDogPolicy,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    validation_fraction: float,
    seed: int,
    weight_decay: float = 0.0,
    set_normalizer: bool = True,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> BCResult:
    """Fit ``policy``'s actor to ``demos`` in place; returns the loss history."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if demos.layout is not policy.layout:
        raise ValueError(
            f"the demonstrations have observation layout {demos.layout.version!r}; the policy reads "
            f"{policy.layout.version!r} (sim config env.obs_history)"
        )
    train_idx, val_idx = split_episodes(demos, validation_fraction, seed)
    obs = torch.as_tensor(demos.observations)
    act = torch.as_tensor(demos.actions)
    if set_normalizer:
        policy.normalizer.set_stats(*observation_stats(demos.observations[train_idx]))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.mean_parameters(), lr=learning_rate, weight_decay=weight_decay)
    result = BCResult(policy=policy, n_train=len(train_idx), n_val=len(val_idx))
    best_state: dict[str, torch.Tensor] | None = None
    best = float("inf")
    bar = tqdm(range(epochs), desc="BC", unit="epoch", disable=not progress)
    for epoch in bar:
        if should_stop is not None and should_stop():
            break
        policy.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = torch.as_tensor(order[start : start + batch_size])
            loss = bc_loss(policy, obs[batch], act[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        result.train_loss.append(total / len(order))
        policy.eval()
        with torch.no_grad():
            idx = torch.as_tensor(val_idx if len(val_idx) else train_idx)
            val = float(bc_loss(policy, obs[idx], act[idx]))
        result.val_loss.append(val)
        if val < best:
            best, result.best_epoch = val, epoch
            best_state = copy.deepcopy(policy.state_dict())
        bar.set_postfix(train=f"{result.train_loss[-1]:.2e}", val=f"{val:.2e}")
    if best_state is not None:
        policy.load_state_dict(best_state)
    return result


# --- bc_pretrained_policy.pth -------------------------------------------------------------------


def checkpoint_metadata(
    kwargs: Mapping[str, Any], use_camera: bool, extra: Mapping[str, Any] | None = None
) -> dict:
    """JSON-plain facts a loader checks before trusting a state_dict."""
    layout = policy_layout(kwargs)
    return {
        "format": POLICY_FORMAT,
        "obs_layout_version": layout.version,
        "obs_dim": layout.dim,
        "action_dim": ACTION_DIM,
        "use_camera": bool(use_camera),
        "policy_kwargs": dict(kwargs),
        **dict(extra or {}),
    }


def save_policy_weights(
    policy: PiDogPolicy, path: str | os.PathLike[str], metadata: Mapping[str, Any]
) -> Path:
    """Atomically write {"state_dict", "metadata"} for ``torch.load(weights_only=True)``."""
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        "metadata": dict(metadata),
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_policy_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a .pth written by ``save_policy_weights``; PretrainedModelError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedModelError(f"pretrained model not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated file, not a torch file at all
        raise PretrainedModelError(
            f"cannot read {path} as policy weights (corrupt or not a .pth): {exc}"
        ) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload or "metadata" not in payload:
        raise PretrainedModelError(
            f"{path} is not a PiDog policy weights file (expected state_dict + metadata)"
        )
    return payload["state_dict"], payload["metadata"]


def check_compatible(
    meta: Mapping[str, Any], kwargs: Mapping[str, Any], use_camera: bool, source: str
) -> None:
    """Refuse weights made for another observation layout or network architecture."""
    if meta.get("format") != POLICY_FORMAT:
        raise PretrainedModelError(f"{source}: format {meta.get('format')!r}, expected {POLICY_FORMAT!r}")
    layout = policy_layout(kwargs)
    if meta.get("obs_layout_version") != layout.version or meta.get("obs_dim") != layout.dim:
        raise PretrainedModelError(
            f"{source} was trained for observation layout {meta.get('obs_layout_version')!r} "
            f"({meta.get('obs_dim')} values); this run uses {layout.version!r} ({layout.dim} values; "
            "sim config env.obs_history)"
        )
    if meta.get("action_dim") != ACTION_DIM:
        raise PretrainedModelError(
            f"{source} has {meta.get('action_dim')} actions; the PiDog has {ACTION_DIM}"
        )
    if bool(meta.get("use_camera")) != bool(use_camera):
        raise PretrainedModelError(
            f"{source} was trained {'with' if meta.get('use_camera') else 'without'} the camera; "
            f"this run is {'with' if use_camera else 'without'} (--use-camera)"
        )
    theirs = meta.get("policy_kwargs") or {}
    for key in ("hidden_sizes", "activation"):
        if theirs.get(key) != kwargs.get(key):
            raise PretrainedModelError(
                f"{source} has network {key}={theirs.get(key)!r}; this run's config has {kwargs.get(key)!r} "
                "(policy.net_arch / policy.activation)"
            )
    # Arguments the weights mean something only under, absent from older checkpoints: the action
    # filter (its state is the observed last action, so weights learnt behind one cutoff read
    # another's observations wrongly) and the critic's sim-only input
    # (pidog_sim.task.PRIVILEGED_LAYOUT; 0: a symmetric critic).
    for key, absent, mismatch in (
        (
            "action_filter_hz",
            0.0,
            "was trained behind a {theirs:g} Hz action filter; this run's is {ours:g} Hz "
            "(env.action_filter_hz; 0: none)",
        ),
        (
            "privileged_dim",
            0,
            "has a critic that sees {theirs} privileged values; this run's critic sees {ours} "
            "(policy.privileged_critic, and pidog_sim.task.PRIVILEGED_LAYOUT in this version of the stack)",
        ),
    ):
        their, our = theirs.get(key, absent), kwargs.get(key, absent)
        if their != our:
            raise PretrainedModelError(f"{source} " + mismatch.format(theirs=their, ours=our))


def load_into_policy(policy: PiDogPolicy, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict with a clear error for shape/key mismatches.

    The log-std is PPO's exploration noise, unused by BC and the deployed mean: weights made
    under the other noise kind (``policy.exploration``) load with this network's own.
    """
    state_dict = dict(state_dict)
    if "log_std" in state_dict and state_dict["log_std"].shape != policy.log_std.shape:
        state_dict["log_std"] = policy.log_std.detach().clone()
    try:
        policy.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise PretrainedModelError(f"{source} does not fit this network: {exc}") from exc


def load_bc_policy(path: str | os.PathLike[str], kwargs: Mapping[str, Any], use_camera: bool) -> PiDogPolicy:
    """A PiDogPolicy with the weights of a checked bc_pretrained_policy.pth."""
    state_dict, meta = load_policy_weights(path)
    check_compatible(meta, kwargs, use_camera, str(path))
    policy = make_policy(kwargs, use_camera)
    load_into_policy(policy, state_dict, str(path))
    return policy
