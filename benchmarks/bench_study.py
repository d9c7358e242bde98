"""The BC -> RL study (issue 12): BC -> RL vs BC alone vs RL from scratch at equal wall-clock.

    python -m benchmarks.bench_study [--seeds 0 1 2] [--preset default] [--out outputs/study]

Task: the default steering task (sampled (vx, wz) commands incl. backward, standing, turning
in place and arcs, resampled within episodes, randomised sim). Per seed:
- BC -> RL: the pipeline with the preset's defaults (demos -> BC -> PPO), timed;
- BC alone: that run's BC policy;
- RL from scratch: the same pipeline with --no-bc-init, given the same wall-clock: its PPO
  budget is BC -> RL's PPO steps plus what PPO would have done in the time BC -> RL spent on
  demonstrations and BC (at BC -> RL's measured PPO rate).
All three (as ONNX) follow the tracking grid (pidog_sim.evaluation.TRACKING_GRID, paired
episodes). Results: docs/benchmarks/study.md and docs/benchmarks/study.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, RESULTS_DIR, machine_summary, write_result

METRICS = (
    "mean_abs_vx_error",
    "mean_abs_wz_error",
    "falls",
    "median_clearance_mm",
    "mean_stance_slip_mps",
    "cost_of_transport",
)


def run_pipeline_timed(preset: str, overrides: dict[str, Any]) -> tuple[Path, dict[str, float]]:
    from pidog_learning.config import resolve_config
    from pidog_learning.pipeline import Reporter, run_pipeline

    marks: list[tuple[float, dict[str, Any]]] = []
    start = time.monotonic()
    reporter = Reporter(on_status=lambda s: marks.append((time.monotonic() - start, dict(s))))
    exp_dir, _ = run_pipeline(resolve_config(preset, overrides), reporter=reporter)
    total = time.monotonic() - start
    ppo_start = next((t for t, s in marks if s.get("phase") == "ppo"), total)
    ppo_end = next((t for t, s in marks if s.get("phase") == "evaluating"), total)
    return exp_dir, {"total_s": total, "before_ppo_s": ppo_start, "ppo_s": max(ppo_end - ppo_start, 1e-6)}


def evaluate(exp_dir: Path, episodes: int) -> dict[str, Any]:
    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.evaluation import TRACKING_GRID, evaluate_tracking

    out = {}
    # "ppo": the fine-tuned policy itself (policy.onnx is the better of BC and PPO, so it can be BC).
    for name, file in (("bc", "bc_policy.onnx"), ("ppo", "policies/ppo_final.onnx")):
        out[name] = evaluate_tracking(
            OnnxPolicy(exp_dir / file).act,
            TRACKING_GRID,
            seconds=8.0,
            seed=1000,
            episodes_per_command=episodes,
        )
    return out


def run_seed(seed: int, preset: str, out: Path, episodes: int) -> dict[str, Any]:
    from pidog_learning.config import resolve_config

    base = {"seed": seed, "output_dir": str(out), "visualize_freq": 0, "progress_bar": False}
    bcrl_dir, bcrl_time = run_pipeline_timed(preset, {**base, "experiment_name": f"bcrl_seed{seed}"})
    ppo_steps = int(resolve_config(preset)["total_rl_timesteps"])
    rate = ppo_steps / bcrl_time["ppo_s"]
    scratch_steps = int(ppo_steps + bcrl_time["before_ppo_s"] * rate)
    scratch_dir, scratch_time = run_pipeline_timed(
        preset,
        {
            **base,
            "experiment_name": f"scratch_seed{seed}",
            "no_bc_init": True,
            "total_bc_epochs": 1,  # its demos only give the shared observation normaliser
            "total_rl_timesteps": scratch_steps,
        },
    )
    bcrl = evaluate(bcrl_dir, episodes)
    scratch = evaluate(scratch_dir, episodes)
    return {
        "seed": seed,
        "bcrl": {"dir": str(bcrl_dir), "time": bcrl_time, "ppo_steps": ppo_steps, "eval": bcrl["ppo"]},
        "bc": {"eval": bcrl["bc"]},
        "scratch": {
            "dir": str(scratch_dir),
            "time": scratch_time,
            "ppo_steps": scratch_steps,
            "eval": scratch["ppo"],
        },
    }


def summarise(runs: list[dict[str, Any]], preset: str, episodes: int) -> str:
    arms = (
        ("bc", "BC alone"),
        ("bcrl", "BC -> RL (its PPO policy)"),
        ("scratch", "RL from scratch (same wall-clock)"),
    )
    lines = [
        "## The BC -> RL study (`python -m benchmarks.bench_study`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Preset `{preset}`, seeds {[r['seed'] for r in runs]}; each policy on the tracking grid, {episodes} paired "
        "episode(s) per command, randomised sim. Means over seeds (min - max in brackets).",
        "",
        "| arm | abs vx error (m/s) | abs wz error (rad/s) | falls | swing clearance (mm) | stance slip (m/s) "
        "| cost of transport | wall-clock (min) | PPO steps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in arms:
        cells = []
        for metric in METRICS:
            values = np.array([r[key]["eval"][metric] for r in runs], dtype=float)
            fmt = (
                "{:.0f}"
                if metric == "falls"
                else "{:.3f}"
                if "error" in metric or "slip" in metric
                else "{:.2f}"
            )
            cells.append(
                f"{fmt.format(values.mean())} ({fmt.format(values.min())} - {fmt.format(values.max())})"
            )
        wall = "-" if key == "bc" else f"{np.mean([r[key]['time']['total_s'] for r in runs]) / 60:.1f}"
        steps = "-" if key == "bc" else f"{np.mean([r[key]['ppo_steps'] for r in runs]):,.0f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {wall} | {steps} |")
    better_bc = sum(
        r["bcrl"]["eval"]["mean_abs_vx_error"] < r["bc"]["eval"]["mean_abs_vx_error"]
        and r["bcrl"]["eval"]["mean_abs_wz_error"] < r["bc"]["eval"]["mean_abs_wz_error"]
        for r in runs
    )
    better_scratch = sum(
        r["bcrl"]["eval"]["mean_abs_vx_error"] + r["bcrl"]["eval"]["mean_abs_wz_error"]
        < r["scratch"]["eval"]["mean_abs_vx_error"] + r["scratch"]["eval"]["mean_abs_wz_error"]
        for r in runs
    )
    lines += [
        "",
        f"- BC -> RL tracks better than BC alone (both vx and wz errors lower) in {better_bc} of {len(runs)} seeds.",
        f"- BC -> RL tracks better than RL from scratch at equal wall-clock (sum of the two errors) in "
        f"{better_scratch} of {len(runs)} seeds.",
        "",
        "![per-seed tracking errors](benchmarks/study.png)",
        "",
    ]
    return "\n".join(lines)


def bc_vs_ppo_section(dirs: list[Path], episodes: int) -> str:
    """BC alone vs its fine-tuned PPO policy for finished full-budget runs (one per seed)."""
    rows, wins = [], 0
    for exp_dir in dirs:
        result = evaluate(exp_dir, episodes)
        config = json.loads((exp_dir / "config.json").read_text())
        bc, ppo = result["bc"], result["ppo"]
        win = (
            ppo["mean_abs_vx_error"] < bc["mean_abs_vx_error"]
            and ppo["mean_abs_wz_error"] < bc["mean_abs_wz_error"]
        )
        wins += win
        rows.append(
            f"| {config['seed']} | {config['total_rl_timesteps']:,} | {bc['mean_abs_vx_error']:.3f} / {ppo['mean_abs_vx_error']:.3f} "
            f"| {bc['mean_abs_wz_error']:.3f} / {ppo['mean_abs_wz_error']:.3f} | {bc['falls']} / {ppo['falls']} "
            f"| {'yes' if win else 'no'} |"
        )
    return "\n".join(
        [
            "",
            "### At the full budget (`pidog-train` defaults; `python -m benchmarks.bench_study --bc-vs-ppo DIR...`)",
            "",
            f"Each run's BC policy and its PPO policy on the tracking grid, {episodes} paired episode(s) per command.",
            "",
            "| seed | PPO steps | abs vx error BC / PPO (m/s) | abs wz error BC / PPO (rad/s) | falls BC / PPO | PPO better on both |",
            "|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"BC -> RL (PPO) tracks better than BC alone on both errors in {wins} of {len(dirs)} seeds at the full budget.",
            "",
        ]
    )


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, metric, unit in ((axes[0], "mean_abs_vx_error", "m/s"), (axes[1], "mean_abs_wz_error", "rad/s")):
        for x, (key, label) in enumerate((("bc", "BC"), ("bcrl", "BC->RL"), ("scratch", "scratch"))):
            values = [r[key]["eval"][metric] for r in runs]
            ax.scatter([x] * len(values), values, label=label)
            ax.bar(x, np.mean(values), alpha=0.3)
        ax.set_xticks([0, 1, 2], ["BC", "BC->RL", "scratch"])
        ax.set_ylabel(f"{metric} ({unit})")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Tracking error per seed (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="default", help="pipeline preset whose budget each run gets")
    parser.add_argument("--episodes", type=int, default=1, help="paired episodes per grid command")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "study")
    parser.add_argument(
        "--from-json", type=Path, default=None, help="re-summarise a finished study_runs.json"
    )
    parser.add_argument(
        "--reevaluate", action="store_true", help="with --from-json: evaluate its policies again"
    )
    parser.add_argument(
        "--bc-vs-ppo",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="append BC alone vs PPO for these finished experiment folders to study.md",
    )
    args = parser.parse_args()
    if args.bc_vs_ppo:
        path = RESULTS_DIR / "study.md"
        text = path.read_text() if path.exists() else ""
        write_result("study", text.rstrip("\n") + "\n" + bc_vs_ppo_section(args.bc_vs_ppo, args.episodes))
        print((RESULTS_DIR / "study.md").read_text())
        return
    if args.from_json is not None:
        runs = json.loads(args.from_json.read_text())
        if args.reevaluate:
            for run in runs:
                bcrl = evaluate(Path(run["bcrl"]["dir"]), args.episodes)
                scratch = evaluate(Path(run["scratch"]["dir"]), args.episodes)
                run["bc"]["eval"], run["bcrl"]["eval"], run["scratch"]["eval"] = (
                    bcrl["bc"],
                    bcrl["ppo"],
                    scratch["ppo"],
                )
            args.from_json.write_text(json.dumps(runs, indent=1))
    else:
        out = args.out / time.strftime("%Y%m%d-%H%M%S")
        out.mkdir(parents=True, exist_ok=True)
        runs = []
        for seed in args.seeds:
            print(f"== seed {seed}", flush=True)
            runs.append(run_seed(seed, args.preset, out, args.episodes))
            (out / "study_runs.json").write_text(json.dumps(runs, indent=1))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(runs, RESULTS_DIR / "study.png")
    path = write_result("study", summarise(runs, args.preset, args.episodes))
    print(path.read_text())


if __name__ == "__main__":
    main()
