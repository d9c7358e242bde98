"""How the floor's grip changes walking and turning (issues 12 and 14): policies and the scripted
gait on the nominal robot over several foot-floor contact time constants.

    python -m benchmarks.bench_contact [--policy FILE ...] [--timeconsts 0.005 0.01 0.02 0.04]
                                       [--episodes 4] [--seconds 8] [--seed 11]

A PiDog has no hip abduction: it turns in place by skidding its feet sideways, so how softly the
floor takes a foot (the contact time constant, ``nominal.contact_timeconst``; the model keeps
MuJoCo's 20 ms) decides the turn rate and the stance slip as much as the gait does. Nothing here
knows a real floor's value (``pidog-sysid --fit ... contact_timeconst`` estimates it from a bag,
docs/SYSID.md); this shows what rides on it. Every randomisation is off but the IMU noise; each
time constant is one nominal robot, ``--episodes`` paired episodes per command.
Without --policy it runs the shipped policy. Results: docs/benchmarks/contact.md and contact.png
(or in --results-dir DIR).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    SHIPPED_POLICY,
    add_results_dir_argument,
    figure_link,
    machine_summary,
    repo_relative,
    write_result,
)
from pidog_sim.evaluation import TRACKING_SETTLE_S
from pidog_sim.model import contact_timeconst, load_model

GAIT = "scripted gait"
FORWARD, BACKWARD, TURN = 0.2, -0.1, 0.6
COMMANDS = [(0.0, 0.0), (FORWARD, 0.0), (BACKWARD, 0.0), (0.0, TURN), (0.0, -TURN)]
TIMECONSTS = (0.005, 0.01, 0.02, 0.04)


def measure(controller: Any, timeconst: float, episodes: int, seconds: float, seed: int) -> dict[str, Any]:
    from pidog_sim.evaluation import evaluate_tracking

    return evaluate_tracking(
        controller,
        COMMANDS,
        seconds=seconds,
        seed=seed,
        episodes_per_command=episodes,
        randomize=False,
        env_kwargs={"nominal": {"contact_timeconst": timeconst}},
    )


def at(result: dict[str, Any], vx: float, wz: float) -> dict[str, Any]:
    """The row of command (vx, wz)."""
    return min(result["commands"], key=lambda r: abs(r["command_vx"] - vx) + abs(r["command_wz"] - wz))


def row(timeconst: float, name: str, result: dict[str, Any], model: float) -> str:
    model_note = " (the model's)" if abs(timeconst - model) < 1e-9 else ""
    return (
        f"| {timeconst * 1000:g} ms{model_note} | {name} | {at(result, FORWARD, 0.0)['vx']:.3f} "
        f"| {at(result, 0.0, TURN)['wz']:+.2f} / {at(result, 0.0, -TURN)['wz']:+.2f} "
        f"| {at(result, BACKWARD, 0.0)['vx']:+.3f} | {result['falls']}/{result['episodes']} "
        f"| {result['mean_stance_slip_mps']:.3f} | {result['chatter_per_foot_s']:.2f} |"
    )


def plot(results: list[tuple[float, str, dict[str, Any]]], path: Path, model: float) -> None:
    """Turn-in-place rate and stance slip against the contact time constant, per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (turn_ax, slip_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(n for _t, n, _r in results):
        mine = [(t, r) for t, n, r in results if n == name]
        ms = [1000 * t for t, _r in mine]
        left = [at(r, 0.0, TURN)["wz"] for _t, r in mine]
        right = [-at(r, 0.0, -TURN)["wz"] for _t, r in mine]
        (line,) = turn_ax.plot(ms, left, "o-", label=f"{name.strip('`')} (left)")
        turn_ax.plot(ms, right, "s--", color=line.get_color(), label=f"{name.strip('`')} (right)")
        slip_ax.plot(ms, [r["mean_stance_slip_mps"] for _t, r in mine], "o-", color=line.get_color())
    turn_ax.axhline(TURN, color="grey", lw=0.8)
    turn_ax.set(
        xscale="log", xlabel="contact time constant (ms)", ylabel=f"turn in place at {TURN} rad/s (rad/s)"
    )
    slip_ax.set(xscale="log", xlabel="contact time constant (ms)", ylabel="mean stance foot slip (m/s)")
    turn_ax.legend(fontsize=6)
    ticks = sorted({1000 * t for t, _n, _r in results})
    for ax in (turn_ax, slip_ax):
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.axvline(1000 * model, color="grey", ls=":", lw=0.8)  # the model's
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", action="append", type=Path, help="ONNX policy (repeatable; default: shipped)")
    p.add_argument("--timeconsts", type=float, nargs="+", default=list(TIMECONSTS), help="seconds")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=11)
    add_results_dir_argument(p)
    args = p.parse_args(argv)
    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.controllers import TrotController

    policies = args.policy or [SHIPPED_POLICY]
    controllers: dict[str, Any] = {GAIT: TrotController()}
    for path in policies:
        controllers[f"`{repo_relative(path)}`"] = OnnxPolicy(path).act
    model = contact_timeconst(load_model())
    rows, results = [], []
    t0 = time.monotonic()
    for timeconst in args.timeconsts:
        for name, controller in controllers.items():
            result = measure(controller, timeconst, args.episodes, args.seconds, args.seed)
            results.append((timeconst, name, result))
            rows.append(row(timeconst, name, result, model))
            print(rows[-1], flush=True)
    wall = time.monotonic() - t0
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plot(results, args.results_dir / "contact.png", model)
    md = [
        "## Walking and turning on floors of other grip (`python -m benchmarks.bench_contact`)",
        "",
        "Ran: `python -m benchmarks.bench_contact "
        + " ".join(f"--policy {repo_relative(p)}" for p in (args.policy or []))
        + f" --timeconsts {' '.join(f'{t:g}' for t in args.timeconsts)} --episodes {args.episodes}"
        f" --seconds {args.seconds:g} --seed {args.seed}` ({wall / 60:.1f} min) on {machine_summary()}.",
        "",
        "The nominal robot (no randomisation but the IMU noise) at each foot-floor contact time "
        "constant (`nominal.contact_timeconst`: shorter is a stiffer, grippier contact; the model "
        f"keeps {1000 * model:g} ms). Commands: standing, forward {FORWARD:g} m/s, backward "
        f"{-BACKWARD:g} m/s, turning in place at +-{TURN:g} rad/s, {args.episodes} episodes of "
        f"{args.seconds:g} s each (first {TRACKING_SETTLE_S:g} s not scored). Speeds are achieved "
        "heading-frame means; slip: mean stance foot speed over all commands; chatter: landings after a flight shorter than one control period, per foot "
        "and second.",
        "",
        f"| contact time constant | controller | vx at {FORWARD:g} m/s | wz at +{TURN:g} / -{TURN:g} rad/s "
        f"| vx at {BACKWARD:g} m/s | falls | slip (m/s) | chatter (per foot and s) |",
        "|---|---|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"![turn in place and stance slip against the contact time constant]({figure_link(args.results_dir, 'contact.png')})",
        "",
    ]
    path = write_result("contact", "\n".join(md), args.results_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
