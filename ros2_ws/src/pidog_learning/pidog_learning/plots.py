"""Training plots (PNG, written atomically): BC loss, learning curve, evaluation comparison."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in worker threads
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .atomic import atomic_output  # noqa: E402


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Save atomically so a viewer never sees a half-written PNG."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def plot_bc_losses(
    train_loss: Sequence[float], val_loss: Sequence[float], path: str | os.PathLike[str]
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(train_loss) + 1)
    ax.plot(epochs, train_loss, label="training")
    ax.plot(epochs, val_loss, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("action MSE")
    ax.set_yscale("log")
    ax.set_title("Behavioural cloning")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_learning_curve(
    rewards: Sequence[Mapping[str, float]],
    evaluations: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    references: Mapping[str, float] | None = None,
) -> Path:
    """Training episode return and evaluated forward speed (with falls) against timesteps.

    ``references``: name -> forward speed (m/s) drawn as horizontal lines (trot, BC only).
    """
    fig, (ax_r, ax_v) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if rewards:
        ax_r.plot([r["timesteps"] for r in rewards], [r["episode_return"] for r in rewards], color="tab:blue")
    ax_r.set_ylabel("mean episode return")
    ax_r.set_title("PPO fine-tuning")
    ax_r.grid(alpha=0.3)
    if evaluations:
        steps = [e["timesteps"] for e in evaluations]
        ax_v.plot(
            steps, [e["mean_forward_speed_mps"] for e in evaluations], "o-", color="tab:green", label="policy"
        )
        ax_f = ax_v.twinx()
        ax_f.bar(
            steps, [e["falls"] for e in evaluations], width=max(steps) * 0.02 + 1, color="tab:red", alpha=0.3
        )
        ax_f.set_ylabel("falls per evaluation", color="tab:red")
        ax_f.set_ylim(0, max(e["episodes"] for e in evaluations) + 0.5)
        ax_f.yaxis.get_major_locator().set_params(integer=True)
    for i, (name, speed) in enumerate((references or {}).items()):
        ax_v.axhline(speed, linestyle="--", color=f"C{i + 3}", label=name)
    ax_v.set_xlabel("timesteps")
    ax_v.set_ylabel("forward speed (m/s)")
    ax_v.grid(alpha=0.3)
    if evaluations or references:
        ax_v.legend(loc="lower right")
    return save_figure(fig, path)


def plot_eval_comparison(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Bar chart of forward speed (+- std) and falls for each evaluated controller."""
    names = list(results)
    fig, (ax_v, ax_f) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_v.bar(
        names,
        [results[n]["mean_forward_speed_mps"] for n in names],
        yerr=[results[n]["std_forward_speed_mps"] for n in names],
        color=[f"C{i}" for i in range(len(names))],
        capsize=4,
    )
    ax_v.set_ylabel("forward speed (m/s)")
    ax_v.grid(axis="y", alpha=0.3)
    episodes = max(results[n]["episodes"] for n in names)
    ax_f.bar(names, [results[n]["falls"] for n in names], color=[f"C{i}" for i in range(len(names))])
    ax_f.set_ylim(0, episodes)
    ax_f.yaxis.get_major_locator().set_params(integer=True)
    ax_f.set_ylabel(f"falls (of {episodes} episodes)")
    ax_f.grid(axis="y", alpha=0.3)
    fig.suptitle("Final evaluation (randomised sim, same seeds for all)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_command_tracking(series: Mapping[str, Sequence[float]], path: str | os.PathLike[str]) -> Path:
    """Commanded vs achieved forward speed and yaw rate over one driven episode."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for ax, key, unit in ((axes[0], "vx", "m/s"), (axes[1], "wz", "rad/s")):
        ax.plot(series["t"], series[f"command_{key}"], "k--", lw=1.2, label="commanded")
        ax.plot(series["t"], series[key], color="tab:blue", lw=1.2, label="achieved (gait-cycle average)")
        ax.set_ylabel(f"{key} ({unit})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_xlabel("sim time (s)")
    fig.suptitle("Deployed policy driven through a command sequence (randomised sim)")
    return save_figure(fig, path)
