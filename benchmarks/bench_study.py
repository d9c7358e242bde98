"""The BC->RL study (issue 8): RL from scratch vs BC->RL vs BC only, several seeds, same budget.

    python -m benchmarks.bench_study [--seeds 0 1 2] [--timesteps 300000] [--out outputs/study]

Task: walk forward on the randomised PiDog at a commanded 0.3 m/s (the top of the command
range, so a learned gait may outrun the scripted trot, whose stride tops out near 0.15 m/s).
The walking bar: mean forward speed >= 0.15 m/s over 10 randomised evaluation episodes of 10 s
with no falls. Both RL arms share everything (demonstrations and their observation normaliser,
network, PPO settings, seeds); only the initialisation and the anti-forgetting measures differ.
Results: docs/benchmarks/study.md and docs/benchmarks/study_curves.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, RESULTS_DIR, machine_summary, write_result

BAR_SPEED = 0.15
TASK_ENV = {"forward_speed": 0.3, "command_mode": "fixed", "episode_seconds": 20.0}
EVAL = {"freq": 20_000, "episodes": 10, "seconds": 10.0, "final_episodes": 10, "final_seconds": 10.0}


def run_arm(
    kind: str, seed: int, timesteps: int, out: Path, preset: str = "default", eval_cfg: dict | None = None
) -> dict[str, Any]:
    from pidog_learning.config import resolve_config
    from pidog_learning.pipeline import Reporter, run_pipeline

    overrides: dict[str, Any] = {
        "seed": seed,
        "output_dir": str(out),
        "experiment_name": f"{kind}_seed{seed}",
        "total_rl_timesteps": timesteps,
        "visualize_freq": 0,
        "progress_bar": False,
        "env": dict(TASK_ENV),
        "eval": dict(eval_cfg or EVAL),
    }
    if kind == "scratch":
        # Same demonstrations (for the shared observation normaliser); the BC net is unused.
        overrides.update(no_bc_init=True, total_bc_epochs=1)
    marks: list[tuple[float, dict[str, Any]]] = []
    start = time.monotonic()
    reporter = Reporter(on_status=lambda s: marks.append((time.monotonic() - start, dict(s))))
    exp_dir, _ = run_pipeline(resolve_config(preset, overrides), reporter=reporter)
    history = json.loads((exp_dir / "training_history.json").read_text())
    evaluation = json.loads((exp_dir / "eval.json").read_text())
    ppo_start = next((t for t, s in marks if s.get("phase") == "ppo"), 0.0)
    curve = []
    for entry in history["evaluations"]:
        # Wall-clock of each evaluation: the first status carrying its eval result.
        wall = next(
            (
                t
                for t, s in marks
                if s.get("timesteps") == entry["timesteps"] and "eval_forward_speed_mps" in s
            ),
            float("nan"),
        )
        curve.append(
            {
                "timesteps": entry["timesteps"],
                "speed": entry["mean_forward_speed_mps"],
                "falls": entry["falls"],
                # BC->RL pays for demos + BC; scratch's clock starts with PPO (its demos are only
                # there to share the normaliser).
                "wall_s": wall - (ppo_start if kind == "scratch" else 0.0),
            }
        )
    reached = next((c for c in curve if c["speed"] >= BAR_SPEED and c["falls"] == 0), None)
    results = evaluation["results"]
    return {
        "kind": kind,
        "seed": seed,
        "experiment": str(exp_dir),
        "curve": curve,
        "steps_to_bar": reached["timesteps"] if reached else None,
        "wall_to_bar_s": reached["wall_s"] if reached else None,
        "final": results.get("finetuned"),
        "bc": results.get("bc"),
        "trot": results.get("trot"),
        "total_wall_s": time.monotonic() - start,
    }


def summarise(runs: list[dict[str, Any]], timesteps: int) -> str:
    def stats(values: list[float | None], unit: str = "") -> str:
        got = [v for v in values if v is not None]
        if not got:
            return "not reached"
        text = f"{np.mean(got):,.0f}{unit}"
        return text + (f" ({len(got)}/{len(values)} seeds reached it)" if len(got) < len(values) else "")

    by = {k: [r for r in runs if r["kind"] == k] for k in ("bcrl", "scratch")}
    trot_speed = float(np.mean([r["trot"]["mean_forward_speed_mps"] for r in runs]))
    trot_falls = float(np.mean([r["trot"]["falls"] for r in runs]))
    bc_runs = by["bcrl"]
    rows = [
        "| arm | env steps to bar | wall-clock to bar | final speed (m/s) | final falls /10 |",
        "|---|---:|---:|---:|---:|",
    ]
    # BC only: the BC policy's own evaluation (t = 0 of the BC->RL run and its final eval).
    bc_reached = [
        0 if (r["curve"][0]["speed"] >= BAR_SPEED and r["curve"][0]["falls"] == 0) else None for r in bc_runs
    ]
    rows.append(
        f"| BC only | {stats(bc_reached)} | - | {np.mean([r['bc']['mean_forward_speed_mps'] for r in bc_runs]):.3f} "
        f"| {np.mean([r['bc']['falls'] for r in bc_runs]):.1f} |"
    )
    for kind, label in (("bcrl", "BC -> RL"), ("scratch", "RL from scratch")):
        rs = by[kind]
        rows.append(
            f"| {label} | {stats([r['steps_to_bar'] for r in rs])} | {stats([r['wall_to_bar_s'] for r in rs], ' s')} "
            f"| {np.mean([r['final']['mean_forward_speed_mps'] for r in rs]):.3f} "
            f"| {np.mean([r['final']['falls'] for r in rs]):.1f} |"
        )
    rows.append(f"| scripted trot (reference) | - | - | {trot_speed:.3f} | {trot_falls:.1f} |")
    # A run already at the bar at t = 0 is counted as one evaluation interval; a run that never
    # reached it within the budget is counted as the budget, so the ratio is a lower bound then.
    steps_bc = [
        max(r["steps_to_bar"] if r["steps_to_bar"] is not None else timesteps, EVAL["freq"])
        for r in by["bcrl"]
    ]
    steps_sc = [r["steps_to_bar"] if r["steps_to_bar"] is not None else timesteps for r in by["scratch"]]
    bound = ">= " if any(r["steps_to_bar"] is None for r in by["scratch"]) else ""
    speedup = f"{bound}{np.mean(steps_sc) / np.mean(steps_bc):.1f}x"
    final_ratio = np.mean([r["final"]["mean_forward_speed_mps"] for r in by["bcrl"]]) / trot_speed
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        "## The BC -> RL study (`python -m benchmarks.bench_study`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Task: forward walking at a commanded {TASK_ENV['forward_speed']} m/s, domain randomisation on; "
        f"budget {timesteps:,} PPO env steps per run; seeds {seeds}; evaluation every {EVAL['freq']:,} steps "
        f"on {EVAL['episodes']} randomised {EVAL['seconds']:.0f} s episodes. Bar: mean speed >= {BAR_SPEED} m/s "
        "with no falls. Means over seeds; wall-clock for BC -> RL includes collecting the 50 demonstration "
        "episodes and BC.",
        "",
        *rows,
        "",
        f"- Env steps to the bar, scratch / BC -> RL: **{speedup}** (target >= 5x; a BC -> RL run already at the "
        f"bar at t = 0 counts as one evaluation interval, {EVAL['freq']:,} steps; a scratch run that never reached "
        "the bar counts as the whole budget, which makes the ratio a lower bound).",
        f"- Final BC -> RL gait vs the scripted trot: **{final_ratio:.2f}x** the trot's speed (target >= 1.5x).",
        "",
        "![learning curves](benchmarks/study_curves.png)",
        "",
        "Reading the numbers:",
        "",
        "- BC alone already clears the bar: cloning 50 trot episodes (with DART action noise) gives a policy",
        "  as fast as the trot with no falls, so BC -> RL starts where scratch arrives after 10^5+ steps.",
        "- From scratch, PPO finds gaits as fast or faster, but they fall: the bar counts falls, and the",
        "  scratch runs' final policies fell in several of 10 randomised episodes while BC -> RL kept the",
        "  trot's robustness (the anti-forgetting measures: critic warm-up, small initial log-std, 0.1x actor",
        "  learning rate, decaying BC loss).",
        "- The 1.5x-the-trot target for the final gait is missed. What bounds it: the trot's stride tops out",
        "  near 0.15 m/s at its fixed 0.4 s cycle, the policy's phase clock keeps that cadence, and the",
        "  anti-forgetting measures deliberately slow how far PPO moves from the prior within 300k steps.",
        "  Tried: commanding 0.3 m/s (the top of the command range) so the reward asks for more than the",
        "  trot gives. Next to try: a longer budget, releasing the actor learning-rate scale after the BC",
        "  term has decayed, and a faster gait clock.",
        "",
        "Per run:",
        "",
        "| arm | seed | steps to bar | final speed | final falls | run wall-clock (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['kind']} | {r['seed']} | {r['steps_to_bar'] if r['steps_to_bar'] is not None else 'not reached'} "
            f"| {r['final']['mean_forward_speed_mps']:.3f} | {r['final']['falls']} | {r['total_wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = {"bcrl": "tab:blue", "scratch": "tab:orange"}
    labels = {"bcrl": "BC -> RL", "scratch": "RL from scratch"}
    for r in runs:
        steps = [c["timesteps"] for c in r["curve"]]
        speed = [c["speed"] for c in r["curve"]]
        ax.plot(
            steps, speed, color=colors[r["kind"]], alpha=0.8, label=f"{labels[r['kind']]} (seed {r['seed']})"
        )
    bc = np.mean([r["bc"]["mean_forward_speed_mps"] for r in runs if r["kind"] == "bcrl"])
    trot = np.mean([r["trot"]["mean_forward_speed_mps"] for r in runs])
    ax.axhline(BAR_SPEED, color="k", ls="--", lw=1, label=f"bar {BAR_SPEED} m/s")
    ax.axhline(bc, color="tab:green", ls=":", label=f"BC only {bc:.3f} m/s")
    ax.axhline(trot, color="tab:gray", ls="-.", label=f"scripted trot {trot:.3f} m/s")
    ax.set_xlabel("PPO environment steps")
    ax.set_ylabel("eval forward speed (m/s)")
    ax.set_title("PiDog forward walking: BC -> RL vs RL from scratch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "study")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds-long run of the whole script (tiny preset)"
    )
    parser.add_argument(
        "--from-json", type=Path, default=None, help="re-summarise a finished study_runs.json"
    )
    args = parser.parse_args()
    preset, eval_cfg = "default", EVAL
    if args.smoke:  # checks the plumbing only; writes nothing to docs/
        preset, eval_cfg = (
            "tiny",
            {"freq": 256, "episodes": 1, "seconds": 1.0, "final_episodes": 1, "final_seconds": 1.0},
        )
    if args.from_json is not None:
        runs = json.loads(args.from_json.read_text())
        plot(runs, RESULTS_DIR / "study_curves.png")
        print(write_result("study", summarise(runs, args.timesteps)).read_text())
        return
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    runs = []
    for seed in args.seeds:
        for kind in ("bcrl", "scratch"):
            print(f"== {kind} seed {seed}", flush=True)
            runs.append(run_arm(kind, seed, args.timesteps, out, preset, eval_cfg))
            (out / "study_runs.json").write_text(json.dumps(runs, indent=2))
    if args.smoke:
        plot(runs, out / "study_curves.png")
        print(summarise(runs, args.timesteps))
        return
    plot(runs, RESULTS_DIR / "study_curves.png")
    path = write_result("study", summarise(runs, args.timesteps))
    print(path.read_text())


if __name__ == "__main__":
    main()
