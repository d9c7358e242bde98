"""Shared helpers for the learning tests: tiny policies and demonstrations, CLI runs."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from pidog_description.spec import ACTION_DIM, OBS_DIM, OBS_SLICES
from pidog_learning.config import resolve_config
from pidog_learning.demonstrations import Demonstrations
from pidog_learning.networks import policy_kwargs

TINY = resolve_config("tiny")
TINY_KWARGS = policy_kwargs(TINY)


def tiny_vec_env(episode_seconds: float = 1.0):
    """One batched simulated robot as the pipeline builds it (privileged critic columns included)."""
    from pidog_learning.config import merge
    from pidog_learning.ppo_finetune import make_vec_env

    return make_vec_env(merge(TINY, {"n_envs": 1, "env": {"episode_seconds": episode_seconds}}), seed=0)


def synthetic_demos(n_episodes: int = 6, steps: int = 100, seed: int = 0) -> Demonstrations:
    """Observations on very different scales; actions a smooth function of phase and state."""
    rng = np.random.default_rng(seed)
    n = n_episodes * steps
    obs = (
        rng.normal(size=(n, OBS_DIM)).astype(np.float32) * np.linspace(0.01, 5.0, OBS_DIM, dtype=np.float32)
        + 3.0
    )
    phase = obs[:, OBS_SLICES["phase"]]
    actions = np.tanh(0.8 * phase[:, :1] + 0.3 * obs[:, :ACTION_DIM] / 5.0).astype(np.float32)
    starts = np.zeros(n, dtype=bool)
    starts[::steps] = True
    return Demonstrations(obs, actions.reshape(n, ACTION_DIM), starts)


def run_train(*args: str) -> tuple[int, str, str]:
    """pidog-train in-process: (exit code, stdout, stderr)."""
    from pidog_learning import train_cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = train_cli.main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def checkpoint_timesteps(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return int(json.loads(archive.read("data"))["num_timesteps"])
