"""report.md: what was trained, how well each controller walks, where the artifacts are."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import write_text

LABELS = {"trot": "scripted trot (expert)", "bc": "BC only", "finetuned": "BC + PPO fine-tuned"}


def _table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [
        "| controller | forward speed (m/s) | falls | mean distance (m) | mean return |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {LABELS.get(name, name)} | {r['mean_forward_speed_mps']:.3f} ± {r['std_forward_speed_mps']:.3f} "
            f"| {r['falls']}/{r['episodes']} | {r['mean_distance_m']:.2f} | {r['mean_return']:.1f} |"
        )
    return lines


def _verdict(results: Mapping[str, Mapping[str, Any]]) -> str:
    bc, ft = results.get("bc"), results.get("finetuned")
    if bc is None or ft is None:
        return "PPO fine-tuning was skipped (--total-rl-timesteps 0): the deployed policy is the BC policy."
    delta = ft["mean_forward_speed_mps"] - bc["mean_forward_speed_mps"]
    falls = ft["falls"] - bc["falls"]
    return (
        f"Fine-tuning changed the forward speed by {delta:+.3f} m/s and the falls by {falls:+d} "
        f"relative to BC only (same evaluation seeds)."
    )


def write_report(
    path: str | os.PathLike[str],
    exp_dir: Path,
    config: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    artifacts: Mapping[str, Path],
    video: Path | None,
) -> Path:
    """Write report.md atomically; image and video links are relative to the experiment folder."""
    path = Path(path)
    results = evaluation["results"]
    first = next(iter(results.values()))
    lines = [
        f"# PiDog training report: {exp_dir.name}",
        "",
        f"Deployed policy: `{evaluation['policy']}` ({LABELS.get(evaluation['selected'], evaluation['selected'])}, "
        f"{evaluation['timesteps']} PPO timesteps, observation layout `{evaluation['obs_layout_version']}`).",
        "",
        f"## Evaluation ({first['episodes']} randomised episodes of {first['seconds']:g} s, "
        f"commanded {config['env']['forward_speed']:g} m/s)",
        "",
        *_table(results),
        "",
        _verdict(results),
        "",
        "![evaluation](plots/eval_comparison.png)",
        "",
    ]
    if "learning_curve" in artifacts:
        lines += ["## Learning curve", "", "![learning curve](plots/learning_curve.png)", ""]
    if "bc_loss" in artifacts:
        lines += ["## Behavioural cloning", "", "![BC loss](plots/bc_loss.png)", ""]
    if video is not None:
        lines += ["## Video", "", f"Final policy, deterministic: [{video.name}](videos/{video.name})", ""]
    lines += [
        "## Run",
        "",
        f"- demonstrations: {config['n_demo_episodes']} episodes"
        + (
            f" from bags {config['demo_bag']}"
            if config["demo_bag"]
            else f" from {config['expert_model'] or 'the scripted trot'}"
        ),
        f"- BC: {config['total_bc_epochs']} epochs" + (" (skipped: --skip-bc)" if config["skip_bc"] else ""),
        f"- PPO: {config['total_rl_timesteps']} timesteps, {config['n_envs']} envs, learning rate {config['learning_rate']:g}"
        + (" (from scratch: --no-bc-init)" if config["no_bc_init"] else ""),
        f"- seed {config['seed']}; full configuration in `config.json`; TensorBoard: `tensorboard --logdir {exp_dir / 'tensorboard'}`",
        "",
        "## Artifacts",
        "",
        *[f"- {name}: `{p.relative_to(exp_dir)}`" for name, p in artifacts.items()],
        "",
    ]
    return write_text(path, "\n".join(lines))
