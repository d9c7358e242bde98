"""report.md: what was trained, how well each controller walks, where the artifacts are."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import write_text

LABELS = {
    # Not "(expert)": the demonstrations may come from --expert-model or bags (the Run section says)
    "trot": "scripted trot",
    "bc": "BC only",
    "finetuned": "BC + PPO fine-tuned",
    "calibrated": "deployed, command-calibrated (policy.onnx)",
}


def _table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [
        "| controller | forward speed (m/s, mean ± 95 % CI) | falls | mean return (± 95 % CI) | mean distance (m) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {LABELS.get(name, name)} | {r['mean_forward_speed_mps']:.3f} ± {_ci(r, 'ci95_forward_speed_mps')} "
            f"| {r['falls']}/{r['episodes']} | {r['mean_return']:.1f} ± {_ci(r, 'ci95_return', '.1f')} "
            f"| {r['mean_distance_m']:.2f} |"
        )
    return lines


def _ci(result: Mapping[str, Any], key: str, fmt: str = ".3f") -> str:
    value = result.get(key, float("nan"))
    return "n/a" if value != value else format(value, fmt)  # nan: one episode has no interval


def _verdict(results: Mapping[str, Mapping[str, Any]]) -> str:
    bc, ft = results.get("bc"), results.get("finetuned")
    if bc is None or ft is None:
        return "PPO fine-tuning was skipped (--total-rl-timesteps 0): the deployed policy is the BC policy."
    from pidog_sim.evaluation import paired_difference

    speed = paired_difference(ft["per_episode_speed_mps"], bc["per_episode_speed_mps"])
    falls = ft["falls"] - bc["falls"]
    measured = "measured" if speed["significant"] else "not distinguishable from 0 at this sample size"
    return (
        f"Fine-tuning changed the forward speed by {speed['mean']:+.3f} ± {_ci(speed, 'ci95')} m/s "
        f"(paired over the same {ft['episodes']} episodes, 95 % CI: {measured}) and the falls by {falls:+d} "
        "relative to BC only."
    )


def continue_hint(exp_dir: Path, total_rl_timesteps: int, evaluation: Mapping[str, Any]) -> str | None:
    """What to do when PPO ran but lost to its BC prior (BC deployed): go on training it.

    Measured (docs/ABLATIONS.md, ninth session): the default PPO dips below BC for its first
    ~1M steps; a seed still behind BC at 2M steps beat it after 1M more (resumed)."""
    if evaluation.get("selected") != "bc" or "finetuned" not in evaluation.get("results", {}):
        return None
    more = max(total_rl_timesteps * 3 // 2, total_rl_timesteps + 1)
    return (
        f"PPO did not beat its BC prior in {total_rl_timesteps:,} steps, so BC is deployed. PPO can go on "
        f"from where it stopped: `pidog-train --resume {exp_dir} --total-rl-timesteps {more}` (in our runs "
        "a seed whose PPO lost to BC at 2M steps beat it after 1M more; docs/ABLATIONS.md)."
    )


def _calibration(calibration: Mapping[str, Any]) -> list[str]:
    if not calibration:
        return []
    if not calibration["calibrated"]:
        return ["## Command calibration", "", f"Not calibrated: {calibration['reason']}.", ""]
    # eval.json files from before calibration.randomize existed: calibrated on randomised robots.
    where = "in randomised sim" if calibration.get("randomized", True) else "on the nominal robot"
    lines = [
        "## Command calibration",
        "",
        f"`policy.onnx` carries a feed-forward calibration ({calibration['seconds_taken']:g} s; "
        f"{calibration['lattice_falls']} falls on the measuring lattice): the policy's response to a "
        f"lattice of commands was measured {where} and inverted in front of it "
        "(`pidog-calibrate-commands`; README). What the policy is told, for some wanted commands:",
        "",
        "| wanted vx (m/s), wz (rad/s) | told vx, wz |",
        "|---|---|",
    ]
    for example in calibration["examples"]:
        (wv, ww), (tv, tw) = example["wanted"], example["told"]
        lines.append(f"| {wv:+.2f}, {ww:+.2f} | {tv:+.3f}, {tw:+.2f} |")
    return [*lines, ""]


def keyboard_section(keyboard: Mapping[str, Any]) -> list[str]:
    """The report's lines on the keyboard check (``Pipeline._keyboard_check``; none if it did not run)."""
    if not keyboard:
        return []
    heading = (
        f"## Every command keyboard_teleop can send ({keyboard['commands']} commands x "
        f"{keyboard['episodes'] // keyboard['commands']} episode(s) of {keyboard['seconds']:g} s, nominal robot)"
    )
    if not keyboard["falls"]:
        return [heading, "", f"`policy.onnx` fell in none of the {keyboard['episodes']} episodes.", ""]
    from pidog_sim.evaluation import format_commands

    where = format_commands(keyboard["fell_at"])
    return [
        heading,
        "",
        f"`policy.onnx` fell in {keyboard['falls']} of {keyboard['episodes']} episodes, commanded (vx m/s, "
        f"wz rad/s) {where}: on the simulator `sim_node` runs, at commands a user sends with the "
        "keyboard. Drive it clear of them, or train another seed.",
        "",
    ]


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
    env = config["env"]
    commanded = (
        "sampled commands"
        if env.get("command_mode") == "sample"
        else f"commanded {env.get('forward_speed', 'the default')} m/s"
    )
    selection = evaluation.get("selection", {})
    lines = [
        f"# PiDog training report: {exp_dir.name}",
        "",
        f"Deployed policy: `{evaluation['policy']}` ({LABELS.get(evaluation['selected'], evaluation['selected'])}, "
        f"{evaluation['timesteps']} PPO timesteps, observation layout `{evaluation['obs_layout_version']}`).",
    ]
    if selection.get("rule"):
        lines.append(f"Selected by measurement ({selection['rule']}): {selection['reason']}.")
    elif selection.get("reason"):
        lines.append(f"{selection['reason']}.")
    hint = continue_hint(exp_dir, int(config["total_rl_timesteps"]), evaluation)
    if hint:
        lines += ["", hint]
    lines += [
        "",
        f"## Evaluation ({first['episodes']} randomised episodes of {first['seconds']:g} s, {commanded}; "
        "speed = heading-frame forward velocity; the same episode seeds for every controller)",
        "",
        *_table(results),
        "",
        _verdict(results),
        "",
        "![evaluation](plots/eval_comparison.png)",
        "",
    ]
    tracking = evaluation.get("tracking") or {}
    if tracking:
        from pidog_sim.evaluation import tracking_table

        t = next(iter(tracking.values()))
        lines += [
            f"## Command tracking ({len(t['commands'])} commands x {t['episodes'] // len(t['commands'])} randomised "
            f"episode(s) of {t['seconds']:g} s, first {t['settle_seconds']:g} s not scored)",
            "",
            *tracking_table({LABELS.get(name, name): r for name, r in tracking.items()}),
            "",
        ]
    lines += _calibration(evaluation.get("calibration") or {})
    lines += keyboard_section(evaluation.get("keyboard") or {})
    if "command_tracking" in artifacts:
        lines += [
            "## Driven through a command sequence",
            "",
            "The deployed policy, commanded forward, turning in place both ways, an arc, fast, backward, stop:",
            "",
            "![commanded vs achieved](plots/command_tracking.png)",
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
        *[
            f"- curriculum stage {i + 1}: from {stage['from_timesteps']:,} steps"
            + (f", ramped over {stage['ramp_timesteps']:,}" if stage.get("ramp_timesteps") else "")
            + f": `{json.dumps(stage['env'])}` (PPO's simulators only; the evaluations keep the task)"
            for i, stage in enumerate(config["curriculum"])
        ],
        f"- seed {config['seed']}; full configuration in `config.json`; TensorBoard: `tensorboard --logdir {exp_dir / 'tensorboard'}`",
        "",
        "## Artifacts",
        "",
        *[f"- {name}: `{p.relative_to(exp_dir)}`" for name, p in artifacts.items()],
        "",
    ]
    return write_text(path, "\n".join(lines))
