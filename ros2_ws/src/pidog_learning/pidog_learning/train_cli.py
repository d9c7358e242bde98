"""pidog-train: demonstrations -> BC -> PPO fine-tuning -> policy.onnx, with the guide's flags.

pidog-train --n-demo-episodes 50 --total-bc-epochs 200 --total-rl-timesteps 500000 --visualize-freq 50000
pidog-train --config demo            # `make demo`: every artifact in about ten minutes
pidog-train --config demo --config my.yaml --set ppo.n_steps=256 --set env.config.command_ranges.wz=[-1,1]
pidog-train --resume outputs/NAME    # continue an interrupted run (Ctrl-C saves a checkpoint)

Precedence: defaults <- preset <- --config files (in order) <- --set (in order) <- flags.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from .config import (
    PRESETS,
    ConfigError,
    add_set_option,
    combine,
    config_source,
    default_of,
    parse_assignments,
    resolve_config,
    unflatten,
)
from .ray_cluster import ClusterError  # Ray itself is imported only when --ray-address asks for it

# flag -> (config key, type, help); defaults come from DEFAULT_CONFIG, never from here.
VALUE_FLAGS: dict[str, tuple[str, type, str]] = {
    "--n-demo-episodes": ("n_demo_episodes", int, "expert episodes to record as demonstrations"),
    "--total-bc-epochs": ("total_bc_epochs", int, "behavioural-cloning epochs"),
    "--total-rl-timesteps": ("total_rl_timesteps", int, "PPO fine-tuning timesteps (0 skips PPO)"),
    "--n-envs": ("n_envs", int, "simulated robots stepped together as one batch for PPO"),
    "--physics-threads": ("physics_threads", int, "threads stepping the batch's physics (0: every core)"),
    "--visualize-freq": (
        "visualize_freq",
        int,
        "timesteps between rollout videos and curve refreshes (0 disables)",
    ),
    "--learning-rate": ("learning_rate", float, "PPO learning rate"),
    "--output-dir": ("output_dir", str, "folder that holds experiment folders"),
    "--experiment-name": ("experiment_name", str, "experiment folder name (default: timestamped)"),
    "--seed": ("seed", int, "random seed"),
    "--pretrained-model": (
        "pretrained_model",
        str,
        "start from these weights (bc_pretrained_policy.pth or a checkpoint .zip)",
    ),
    "--expert-model": (
        "expert_model",
        str,
        "collect demonstrations from this trained policy (.zip/.onnx) instead of the trot",
    ),
    "--ray-address": (
        "ray.address",
        str,
        "simulate PPO's robots on this Ray cluster (HOST:PORT of the head, 'auto' or 'local'); "
        "needs requirements/ray.txt, see docs/CLUSTER.md",
    ),
    "--ray-workers-per-node": ("ray.workers_per_node", int, "Ray simulator workers per node"),
}
SWITCH_FLAGS: dict[str, tuple[str, str]] = {
    "--use-camera": ("use_camera", "add the head-camera image to the observation"),
    "--skip-bc": ("skip_bc", "skip behavioural cloning (needs --pretrained-model)"),
    "--no-bc-init": ("no_bc_init", "PPO from scratch instead of from the BC weights (for comparisons)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pidog-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PRESET|FILE",
        help=f"a preset of defaults ({', '.join(sorted(PRESETS))}; default: default) or a YAML/JSON file "
        "of nested overrides; repeatable, applied in order",
    )
    add_set_option(
        parser,
        "override one option, nested keys dotted (ppo.n_steps=256, env.config.command_ranges.wz=[-1,1]); "
        "VALUE is JSON/YAML, typed against the default; repeatable",
    )
    for flag, (key, kind, text) in VALUE_FLAGS.items():
        parser.add_argument(
            flag, dest=key, type=kind, default=None, help=f"{text} (default: {default_of(key)})"
        )
    for flag, (key, text) in SWITCH_FLAGS.items():
        parser.add_argument(flag, dest=key, action="store_true", default=None, help=text)
    parser.add_argument(
        "--demo-bag",
        dest="demo_bag",
        nargs="+",
        default=None,
        metavar="PATH",
        help="import demonstrations from rosbag2 recordings",
    )
    parser.add_argument(
        "--robot-params",
        dest="robot_params",
        default=None,
        metavar="FILE",
        help="robot parameters file (pidog-sysid): nominal physics from it, randomisation centred on it",
    )
    parser.add_argument(
        "--viewer",
        action="store_true",
        help="show each periodic evaluation rollout (--visualize-freq) live in MuJoCo's viewer, "
        "besides the MP4s; without a display it says so",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="PATH",
        help="continue the experiment in PATH (folder or checkpoint .zip)",
    )
    return parser


def explicit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Only what the user typed: presets and saved configs supply the rest."""
    keys = (
        [key for key, *_ in VALUE_FLAGS.values()] + [key for key, _ in SWITCH_FLAGS.values()] + ["demo_bag"]
    )
    # Dotted keys (ray.address) are nested options.
    return unflatten({key: getattr(args, key) for key in keys if getattr(args, key) is not None})


def with_flag_names(message: str) -> str:
    """ "option 'n_envs' ..." -> "option 'n_envs' (--n-envs) ..." for options that are flags."""
    flags = {key: flag for flag, (key, *_rest) in {**VALUE_FLAGS, **SWITCH_FLAGS}.items()}
    flags["demo_bag"] = "--demo-bag"
    return re.sub(
        r"'([\w.]+)'", lambda m: f"'{m[1]}' ({flags[m[1]]})" if m[1] in flags else m[0], message, count=1
    )


def config_layers(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(preset, overrides) from --config, --set and the flags; ConfigError names a bad key/file."""
    presets: list[str] = []
    files: list[dict[str, Any]] = []
    for spec in args.config:
        name, overrides = config_source(spec)
        if name is not None:
            presets.append(name)
        else:
            files.append(overrides)
    if len(presets) > 1:
        raise ConfigError(f"--config: give at most one preset, got {presets}")
    layers = [*files, parse_assignments(args.assignments), explicit_options(args)]
    if getattr(args, "robot_params", None):
        from pidog_sim.robot_params import RobotParamsError, load_override

        try:  # into the env config, so the saved experiment config records what was used
            layers.append({"env": load_override(args.robot_params)})
        except RobotParamsError as exc:
            raise ConfigError(f"--robot-params: {exc}") from None
    return (presets[0] if presets else "default"), combine(*layers)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        preset, overrides = config_layers(args)
        if args.resume is None:
            config = resolve_config(preset, overrides)
        ray_options = (config if args.resume is None else overrides).get("ray") or {}
        if ray_options.get("address"):
            # Join the cluster and check it can host the simulators now, not after demos and BC.
            from .ray_vec_env import preflight as ray_preflight

            ray_preflight(ray_options, config["n_envs"] if args.resume is None else None)
    except (ConfigError, ClusterError) as exc:
        parser.exit(2, f"pidog-train: error: {with_flag_names(str(exc))}\n")

    from .pipeline import PipelineError, Reporter, run_pipeline
    from .ppo_finetune import TrainingInterrupted

    started: dict[str, str] = {}

    def say(state: dict[str, Any]) -> None:
        if state.get("experiment_dir"):
            started["dir"] = state["experiment_dir"]
        if state.get("message"):
            print(f"[{state.get('phase')}] {state['message']}", flush=True)

    reporter = Reporter(on_status=say)
    viewer = None
    if args.viewer:
        from pidog_sim.model import load_model
        from pidog_sim.viewer import LiveViewer

        viewer = LiveViewer.open(load_model(), "pidog-train")
    try:
        if args.resume is not None:
            exp_dir, artifacts = run_pipeline(
                resume=args.resume, resume_overrides=overrides, reporter=reporter, viewer=viewer
            )
        else:
            exp_dir, artifacts = run_pipeline(config, reporter=reporter, viewer=viewer)
    except (ConfigError, PipelineError, ClusterError) as exc:
        parser.exit(2, f"pidog-train: error: {with_flag_names(str(exc))}\n")
    except TrainingInterrupted as exc:
        folder = exc.checkpoint.parent.parent
        print(f"\n{exc}\ncontinue with: pidog-train --resume {folder}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        # Before PPO: the finished phases (demonstrations, BC) are saved; --resume reuses them.
        where = f"; continue with: pidog-train --resume {started['dir']}" if "dir" in started else ""
        print(f"\npidog-train: stopped before PPO training{where}", file=sys.stderr)
        return 130
    finally:
        if viewer is not None:
            viewer.close()
            print(
                f"pidog-train: the viewer showed {viewer.episodes_shown} rollout(s), "
                f"{viewer.frames_drawn} frames drawn",
                flush=True,
            )
    print(f"\nArtifacts in {exp_dir.resolve()}:")
    width = max(len(name) for name in artifacts)
    for name, path in artifacts.items():
        print(f"  {name:<{width}}  {path.relative_to(exp_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
