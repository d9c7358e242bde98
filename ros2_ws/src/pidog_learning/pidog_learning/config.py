"""Pipeline configuration: every default in ONE plain dict, presets as partial overrides.

The top-level keys are the command-line options of ``pidog-train`` (underscored) and the ROS
parameters of the learning node; nested groups are tuning knobs (``ppo.n_steps`` as a ROS
parameter). ``resolve_config`` merges defaults <- preset <- explicit overrides and validates,
so a bad value is reported by name before any work starts. Overrides come from config files
(``load_config_file``: YAML/JSON, nested), ``--set KEY=VALUE`` (``parse_assignments``) and flags;
every value is typed against the default it replaces.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG: dict[str, Any] = {
    # --- the user's guide flags (same meaning and defaults) ---------------------------------
    "n_demo_episodes": 50,
    "total_bc_epochs": 200,
    # 0 skips PPO. The guide's 500k was sized for the old 400 steps/s loop; a steerable policy
    # needs ~2M, which the batched simulator runs in ~10 min on 2 cores (docs/BENCHMARKS.md).
    "total_rl_timesteps": 2_000_000,
    # Simulated robots stepped as one batch (pidog_sim.vec_env.PiDogVecEnv); 64 with 128-step
    # rollouts was the fastest setting on 2 cores (docs/benchmarks/training.md).
    "n_envs": 64,
    "visualize_freq": 500_000,  # timesteps between videos + curve refresh; 0 disables
    "learning_rate": 3e-4,  # PPO
    "use_camera": False,
    "output_dir": "outputs",
    "experiment_name": None,  # None: timestamped
    "seed": 42,
    "pretrained_model": None,  # bc_pretrained_policy.pth or a pipeline PPO checkpoint .zip
    "skip_bc": False,  # needs pretrained_model
    # --- our additions ----------------------------------------------------------------------
    "expert_model": None,  # demonstrations from a trained policy (.zip / .onnx) instead of the trot
    # PPO from scratch for comparisons: plain PPO (log-std 0, no warm-up, no BC term, one learning
    # rate) with the demos' observation normaliser; BC still runs as the baseline.
    "no_bc_init": False,
    "demo_bag": [],  # rosbag2 recordings to import as the demonstrations instead of sim rollouts
    "progress_bar": True,
    "physics_threads": 0,  # threads stepping the batch's physics; 0: every core
    # Torch threads while the simulator steps (the policy's forward pass shares the cores with
    # the physics threads) and during learner updates (BC epochs, PPO updates: nothing else
    # runs; 0 = every core). On 2 cores: 1 and 0 (docs/benchmarks/sim.md).
    "torch_threads": 1,
    "update_threads": 0,
    # Environment used for demonstrations, PPO and evaluation: PiDogEnv keyword arguments, any
    # key of pidog_sim.config.DEFAULT_SIM_CONFIG. The default task is steering: (vx, wz) drawn
    # over the whole command range (standing, turning in place, arcs, backward), resampled within
    # episodes; velocity tracking rewarded on the gait-cycle average. swing_height: a swing whose
    # peak falls short of 15 mm costs at touchdown; without it PPO shuffles (median clearance
    # 7.1-8.3 mm over three seeds, the gait's ~14); at weight 2 over five seeds 10.0-12.0 mm,
    # and 47-57 of issue 14's 60 robustness cells at four of them (40-44 without), but seed 0 fell
    # more (docs/ABLATIONS.md, eighteenth session). action_filter_hz: the policy acts behind a
    # 6 Hz first-order low-pass (pidog_description.spec.filter_action; the exported policy names
    # it and policy_node runs it): against the same three seeds without it, the stance slip fell
    # from 0.077-0.083 to 0.058-0.065 m/s, the vx error at all three, and the robustness cells'
    # falls went (docs/ABLATIONS.md, thirty-fifth session). randomization: issue 14 asks the
    # default randomisation to cover the plausible robots until one is identified, and the
    # simulator's own draw (eight servos drawn apart over 0.8-1.2x, torso 0.85-1.2x) never
    # trains a robot weak all round. Training draws one servo strength per robot over 0.7-1.3x
    # (0.245-0.455 N·m) and the torso over 0.8-1.3x (0.84-1.16 kg), covering issue 14's target
    # range: adopted for what it trains on, not for a measured gain. Over five seeds against the
    # same seeds without it: robustness cells 55.5 against 56.6 per draw on average (per seed
    # 51-60 against 54-58), vx error 0.022-0.030 m/s, wz error worse (0.116 against 0.093 rad/s),
    # the seed-15 run all 60 cells at four draws (docs/ABLATIONS.md, forty-fourth session). The
    # pipeline's own evaluations and its command calibration run on these robots; pidog-eval and
    # the benchmarks on the simulator's defaults.
    "env": {
        "episode_seconds": 20.0,
        "command_mode": "sample",
        "action_filter_hz": 6.0,
        "randomization": {
            "servo_strength_draw": "robot",
            "servo_strength": (0.7, 1.3),
            "mass_scale": (0.8, 1.3),
        },
        "reward": {
            "track_vx": 2.0,
            "track_vx_sigma": 0.1,
            "track_wz": 2.0,
            "track_wz_sigma": 0.5,
            "swing_height": 2.0,
        },
    },
    # Changes to the training env as PPO goes on (pidog_learning.curriculum): a list of stages
    # {from_timesteps, ramp_timesteps (0: at once), env: {reward / randomization / command
    # options}}. Only PPO's simulators follow it; evaluations keep measuring `env`'s task.
    # Empty: the task stays as `env` says.
    "curriculum": [],
    "demos": {
        "episode_seconds": 20.0,
        # DART: the executed action gets Gaussian noise of this std (action units) while the
        # clean expert action is recorded, so the demos show how to recover from small errors.
        "action_noise": 0.05,
        "drop_falls": True,  # an episode ending in a fall teaches falling: leave it out
    },
    # initial_log_std: PPO's exploration noise at the start of fine-tuning, exp(-1.5) = 0.22
    # action units. With 64 robots per batch and 8k-step updates PPO tolerates noise the old
    # 4-env loop could not (it needed exp(-3) and barely moved); less noise left the gait at BC.
    # privileged_critic: the critic also sees sim-only state (pidog_sim.task.PRIVILEGED_LAYOUT:
    # true velocities, contacts, randomised physics); the actor and the ONNX never do.
    "policy": {
        "net_arch": [256, 256],
        "activation": "tanh",
        "initial_log_std": -1.5,
        "privileged_critic": True,
        # "gaussian": noise independent per joint and step; "gsde": SB3's state-dependent noise
        # (networks.EXPLORATIONS), a random linear map of the actor's hidden state held for
        # ppo.sde_sample_freq steps, so a perturbation follows the gait instead of breaking
        # strides. Its strength is still set by initial_log_std (as the mean action std).
        "exploration": "gaussian",
        # "trot": a residual policy over the scripted trot (pidog_learning.action_prior); the
        # actor's mean action is the trot's action for the observed command and clock plus the
        # network's output, and the exported file carries both. At two seeds it slid 0.054 m/s
        # over the grid (the defaults 0.064-0.066, the trot 0.049) but tracked wz at 0.167-0.187
        # rad/s and turned in place at 0.25-0.41. Its BC stage now fits the network to the whole
        # action, then zeroes the last layer (PiDogPolicy.cloning_whole_actions): from there seven
        # seeds tracked wz at 0.095-0.144 and kept 50-60 of 60 robustness cells, slip 0.055-0.069,
        # 0-3 grid falls in 88 (docs/ABLATIONS.md, fortieth and forty-first sessions).
        "action_prior": "none",
    },
    "bc": {"learning_rate": 1e-3, "batch_size": 256, "validation_fraction": 0.1, "weight_decay": 0.0},
    "ppo": {
        "n_steps": 128,  # per robot and rollout: 64 x 128 = 8192 steps per update
        "batch_size": 2048,
        "n_epochs": 5,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        # PPO learns from reward_scale x the task's reward, so the critic's returns are O(1)
        # (ppo_finetune.ScaledReward); logged returns stay in the task's units. At 1.0 (returns
        # ~200) the critic explained ~0 % of the returns' variance for the first ~1M steps; at
        # 0.01, 39-55 % by 50-100k steps and 70-90 % from ~300k, and three seeds' default runs
        # all deployed PPO and tracked wz better (docs/ABLATIONS.md, fifteenth session).
        "reward_scale": 0.01,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        # Early-stop an update that moves the policy too far; 0 disables. With the small
        # exploration std a few Adam steps already shift the mean by a lot of KL: keep it tight.
        "target_kl": 0.05,
        # Left/right mirror loss on the actor (pidog_learning.symmetry); 0 disables. Also for
        # --no-bc-init: it is part of PPO here, not of the BC prior. At 1.0 the loss did not
        # bind. At 10, over 3 seeds, turns matched and the wz error and grid falls dropped, but
        # the vx error rose in 2 of 3, and the seed-0 policy failed the shipped policy's
        # ROS-graph tests (drift at a zero command, a slow arc at (0.05, 1.0)), so it stays off
        # (docs/ABLATIONS.md).
        "symmetry_loss_weight": 0.0,
        # Spatial smoothness loss on the actor (pidog_learning.smoothness): the mean action may
        # change little for a perturbation of smoothness_sigma normaliser stds of its feedback;
        # 0 disables. At 50 and 200 it smoothed the policy but not its stance slip (0.055-0.064
        # m/s against 0.064-0.066; docs/ABLATIONS.md, thirty-seventh session), so it is off.
        "smoothness_loss_weight": 0.0,
        "smoothness_sigma": 0.05,
        # gSDE only: steps between new noise maps; -1: one per rollout (n_steps).
        "sde_sample_freq": -1,
    },
    # Measures against forgetting the BC prior during PPO.
    "finetune": {
        "critic_warmup_timesteps": 100_000,  # actor frozen while the random critic learns values
        "actor_lr_scale": 1.0,  # actor step / --learning-rate (see ppo_finetune.FinetunePPO)
        # The exploration log-std's step / the actor's. At 1 PPO's learnt noise hardly moves (its
        # log-std from -1.5 to -1.6..-1.8 over 2M steps); at 10 it reaches -1.9..-2.4, and over five
        # seeds the stance slip fell in 5 of 5 (0.078 against 0.087 m/s), vx error in 4 of 5, grid
        # falls 8 against 13 of 660, robustness cells 259 against 244 of 300; wz error the same on
        # average; one run of five deployed BC (docs/ABLATIONS.md, twenty-fourth session).
        "log_std_lr_scale": 10.0,
        "bc_loss_weight": 0.1,  # DAPG-style BC term added to the PPO loss; 0 disables
        "bc_loss_decay": 0.9,  # weight multiplier per bc_loss_decay_timesteps after warm-up
        # Fixed in timesteps (one default-size rollout: 128 steps x 64 robots), not per update,
        # so the weight does not jump when --n-envs changes on resume.
        "bc_loss_decay_timesteps": 8192,
        "bc_loss_batch_size": 256,
        # Below this weight the term is dropped, not computed: 1e-5 is 1e-4 of its start, reached
        # ~816k steps into a default run. Without a floor its forward and backward pass on the
        # demo batch ran in every PPO update to 2M steps, at weights down to 2e-12.
        "bc_loss_min_weight": 1e-5,
        # A second BC term that never decays, on the demonstrations whose command lies in
        # bc_keep_commands (closed ranges, m/s and rad/s): where the scripted gait follows its
        # command (walking straight up to 0.15 m/s either way, standing), the policy is held to
        # it; elsewhere PPO is free. 0 disables. At 1, asked for the gait's own motions
        # (benchmarks.bench_matched_slip) three seeds slid 0.050-0.057 m/s (the gait 0.049, a
        # default run 0.059) but walked 0.19-0.21 m/s at 0.3 commanded; with the box to 0.1 m/s
        # two seeds tracked vx and wz within issue 12's targets and slid 0.048 / 0.052 there,
        # 0.057 / 0.063 over the grid, and fell 1-2 times in 88 (docs/ABLATIONS.md, forty-sixth
        # session).
        "bc_keep_weight": 0.0,
        "bc_keep_commands": {"vx": (-0.15, 0.15), "wz": (-0.05, 0.05)},
        # Hand-over from the BC prior to PPO: once the BC weight has decayed below
        # handover_bc_weight, the actor steps at handover_actor_lr_scale x the learning rate and
        # its log-std is raised to at least handover_log_std. 0 disables the hand-over.
        "handover_bc_weight": 0.0,
        "handover_actor_lr_scale": 1.0,
        "handover_log_std": -2.0,  # exp(-2) = 0.135 action units
        # Exploration noise annealed over the end of training (ppo_finetune.NoiseAnnealCallback):
        # from this fraction of total_rl_timesteps the log-std's ceiling falls linearly from
        # policy.initial_log_std to final_log_std, so the mean is tuned for the noise-free
        # policy the robot runs. 1.0 disables: measured, it cut the low-speed overshoot but also
        # the top speed (docs/ABLATIONS.md), so it is off by default.
        "noise_anneal_from": 1.0,
        "final_log_std": -3.0,  # exp(-3) = 0.05 action units
    },
    "eval": {
        "freq": 250_000,  # timesteps between evaluations (+ checkpoint + ONNX export); 0: only at the end
        "episodes": 5,
        "seconds": 10.0,
        "final_episodes": 10,
        "final_seconds": 20.0,
        "video_seconds": 8.0,
        "seed": 1000,  # evaluation episodes use seeds other than training's
        # Final command-tracking grid (pidog_sim.evaluation.TRACKING_GRID, >= 20 commands) per
        # controller: episodes per command (0 skips it), their length and unscored start.
        "tracking_episodes": 2,
        "tracking_seconds": 8.0,
        "tracking_settle_seconds": 2.0,
        # Every command keyboard_teleop can send (pidog_description.spec.teleop_commands: 90) on
        # the nominal robot sim_node runs, with the deployed policy: episodes per command (0
        # skips it) and their length. A policy can pass the grid and still fall at one of them,
        # at its top speed say (docs/ABLATIONS.md, twenty-fifth session); 17 s on 2 cores.
        "keyboard_episodes": 2,
        "keyboard_seconds": 8.0,
    },
    # Feed-forward command calibration of the deployed policy (pidog_learning.command_calibration,
    # pidog-calibrate-commands): its response to a lattice of commands is measured in randomised sim and
    # inverted in front of it in policy.onnx. Cut the grid's vx error from 0.037 to 0.025 m/s,
    # pooled over 132 episodes (docs/ABLATIONS.md, sixth session).
    # randomize: measure on the training env's randomised robots; false: on its nominal robot only
    # (the identified one with --robot-params; no noise, so one episode per command). Mixed on
    # the grid and the robustness cells over seven policies, so not the default (docs/ABLATIONS.md,
    # thirty-first session). episodes: per lattice command. A turn in place moves by +-0.2 rad/s
    # between episodes, so a lattice of 4 fitted noise: over three seeds' runs, 16 instead of 4
    # lowered the pooled grid's vx error at all three (0.020-0.021 against 0.023-0.026 m/s) and
    # raised the top speed at all three; the wz error lower at one, the same at one, higher at one
    # (0.091-0.112 against 0.096-0.105 rad/s), grid falls 5 against 4 of 396. 59 s in a default run
    # alone on 2 cores (docs/ABLATIONS.md, thirty-sixth session).
    "calibration": {"enabled": True, "episodes": 16, "seconds": 8.0, "seed": 20_000, "randomize": True},
    # More than one machine (docs/CLUSTER.md): with an address, PPO's simulators run as Ray actors
    # (pidog_learning.ray_vec_env) and the learner stays here. None: no Ray at all (the default).
    # address: 'local' (a private Ray on this machine), 'auto' or a head's HOST:PORT.
    # cpus_per_worker 0: a node's CPUs shared evenly by its workers.
    "ray": {"address": None, "workers_per_node": 1, "cpus_per_worker": 0, "include_learner_node": False},
}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # `make demo`: every artifact in about ten minutes on two cores. 1.5M PPO steps: at 600k
    # PPO's policy tracked no better than its BC (0 of 3 seeds); along two 1.5M runs it passed
    # BC on both axes from 1.25M and tracked best at the end (docs/ABLATIONS.md,
    # twenty-seventh session).
    "demo": {
        "n_demo_episodes": 20,
        "total_bc_epochs": 40,
        "total_rl_timesteps": 1_500_000,
        "visualize_freq": 500_000,
        "finetune": {"critic_warmup_timesteps": 50_000},
        "eval": {
            "freq": 250_000,
            "episodes": 3,
            "seconds": 8.0,
            "final_episodes": 5,
            "final_seconds": 10.0,
            "video_seconds": 6.0,
            "tracking_episodes": 1,
            "keyboard_episodes": 1,
        },
        # A quarter of the default's lattice episodes: its time goes to PPO.
        "calibration": {"episodes": 4},
    },
    # Tests: seconds per run, still every phase and artifact.
    "tiny": {
        "n_demo_episodes": 2,
        "total_bc_epochs": 3,
        "total_rl_timesteps": 256,
        "n_envs": 1,
        # One thread each: nets and batches this small gain nothing from a second, and the tests
        # run two processes at a time (a default run's BC epochs on 2 torch threads went from
        # ~1 s to 6-8 s while one test process ran beside it, measured on 2 cores).
        "physics_threads": 1,
        "update_threads": 1,
        "visualize_freq": 128,
        "progress_bar": False,
        "env": {"episode_seconds": 2.0},
        "demos": {"episode_seconds": 2.0},
        "policy": {"net_arch": [32, 32]},
        "bc": {"batch_size": 64},
        "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
        "finetune": {"critic_warmup_timesteps": 64, "bc_loss_batch_size": 64, "bc_loss_decay_timesteps": 64},
        "eval": {
            "freq": 128,
            "episodes": 1,
            "seconds": 1.0,
            "final_episodes": 1,
            "final_seconds": 1.0,
            "video_seconds": 0.4,
            "tracking_episodes": 1,
            "tracking_seconds": 0.6,
            "tracking_settle_seconds": 0.2,
            "keyboard_episodes": 1,
            "keyboard_seconds": 1.0,
        },
        "calibration": {"episodes": 1, "seconds": 2.5},
    },
}

# Options that describe a run rather than its identity: may change when resuming.
RESUMABLE_OVERRIDES: frozenset[str] = frozenset(
    {
        "total_rl_timesteps",
        "n_envs",
        "physics_threads",
        "visualize_freq",
        "progress_bar",
        "torch_threads",
        "update_threads",
        "eval",
        "ray",  # where the simulators run, not what is learned
        # The training env from the resumed step on (e.g. a stage for the steps a resume adds);
        # stages already begun apply at once.
        "curriculum",
        # The last stage, after training: a finished run resumed with other calibration options
        # (``--resume DIR --set calibration.episodes=16``) trains no further and calibrates again.
        "calibration",
    }
)
# What a run saved before an option existed did, by option: resuming such a run fills these in
# (``with_saved_before``), so everything downstream reads every option as given.
SAVED_BEFORE: dict[str, Any] = {
    "ppo.reward_scale": 1.0,  # PPO learnt from the unscaled reward
    "ppo.sde_sample_freq": -1,  # no gSDE then: unused
    "ppo.smoothness_loss_weight": 0.0,  # no smoothness term then
    "ppo.smoothness_sigma": 0.05,  # unused
    "policy.exploration": "gaussian",
    "policy.action_prior": "none",  # the network alone
    "policy.privileged_critic": False,  # the critic saw the actor's input
    "finetune.bc_loss_min_weight": 0.0,  # the BC term was never dropped
    "finetune.bc_keep_weight": 0.0,  # no kept BC term
    "finetune.bc_keep_commands": DEFAULT_CONFIG["finetune"]["bc_keep_commands"],  # unused
    "finetune.log_std_lr_scale": 1.0,  # the log-std stepped with the actor, in its group
    "calibration": {**DEFAULT_CONFIG["calibration"], "enabled": False},  # no calibration stage
    "calibration.randomize": True,  # calibrated on the training robots
    "eval.keyboard_episodes": 0,  # no check of the keyboard's commands
    "eval.keyboard_seconds": DEFAULT_CONFIG["eval"]["keyboard_seconds"],
    "ray": DEFAULT_CONFIG["ray"],  # no Ray
    "curriculum": [],
    "env.action_filter_hz": 0.0,  # no action filter
}
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu")
EXPLORATIONS: tuple[str, ...] = ("gaussian", "gsde")  # policy.exploration (networks.PiDogPolicy)
ACTION_PRIORS: tuple[str, ...] = ("none", "trot")  # policy.action_prior (pidog_learning.action_prior)
CONFIG_FILE_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")


class ConfigError(ValueError):
    """An option with a value that makes no sense; the message names the option."""


# Groups whose keys are another component's keyword arguments: ``env`` goes to PiDogEnv (and
# its sim config), which knows its own options and refuses unknown ones at preflight. Keys there
# pass the merge; their types are checked against the sim's defaults where those exist.
OPEN_GROUPS: frozenset[str] = frozenset({"env"})


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any] | None, where: str = "") -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``, each value typed against the default it
    replaces; unknown keys raise ConfigError (inside OPEN_GROUPS they pass through)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        name = f"{where}{key}"
        if key not in merged:
            if name.split(".")[0] not in OPEN_GROUPS:
                raise ConfigError(f"unknown option '{name}'; valid options: {sorted(merged)}")
            merged[key] = _typed_open(name, value)
        elif isinstance(merged[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"option '{name}' must be a mapping, got {value!r}")
            merged[key] = merge(merged[key], value, where=f"{name}.")
        else:
            merged[key] = typed(name, value, merged[key])
    return merged


def typed(name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (ints are accepted for floats, a list
    for a tuple of the same length); raises ConfigError naming the option."""

    def wrong(kind: str) -> ConfigError:
        return ConfigError(f"option '{name}' must be {kind}, got {value!r}")

    if default is None:
        return copy.deepcopy(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise wrong("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            raise wrong(f"a list like {list(default)!r}")
        if isinstance(default, tuple):
            if len(value) != len(default):
                raise wrong(f"a list of {len(default)} values like {list(default)!r}")
            return tuple(
                typed(f"{name}[{i}]", v, d) for i, (v, d) in enumerate(zip(value, default, strict=True))
            )
        return [typed(f"{name}[{i}]", v, default[0]) for i, v in enumerate(value)] if default else list(value)
    return copy.deepcopy(value)


def combine(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge partial override dicts, later ones winning (no defaults, no checks yet)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = combine(out[key], value)
            else:
                out[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return out


def parse_value(text: str) -> Any:
    """A --set value: JSON first (so 1e-4 is a number), then YAML (bare words, lists)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    return yaml.safe_load(text)


def add_set_option(parser: argparse.ArgumentParser, text: str) -> None:
    """The repeatable ``--set KEY=VALUE`` flag (into ``args.assignments``) that
    :func:`parse_assignments` reads; pidog-train and pidog-sweep share it."""
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help=text
    )


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["ppo.n_steps=256", "env.command_ranges.wz=[-1,1]"]`` -> nested overrides, each key
    checked against the defaults and each value typed (ConfigError names the key)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"--set expects KEY=VALUE with a dotted KEY such as ppo.n_steps=256, got {item!r}"
            )
        try:
            value = parse_value(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"option '{key}': cannot parse value {text!r}: {exc}") from None
        default = default_of(key)
        if isinstance(default, str) or (default is None and key.split(".")[0] not in OPEN_GROUPS):
            # Paths and names stay text: experiment_name=2024 is a name, not a number.
            value = None if default is None and text.strip() in ("", "null", "~") else text
        layer = unflatten({key: value})
        merge(DEFAULT_CONFIG, layer)  # unknown key or wrong type: named now, before any work
        overrides = combine(overrides, layer)
    return overrides


def default_of(key: str) -> Any:
    """The default value of a dotted option (env keys: the sim's default), or None if it has none."""
    node: Any = DEFAULT_CONFIG
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _env_default(key) if key.split(".")[0] in OPEN_GROUPS else None
        node = node[part]
    return node


def _env_defaults() -> dict[str, Any]:
    """PiDogEnv's options that have defaults: the sim config (also reachable as env.config.X)."""
    from pidog_sim.config import DEFAULT_SIM_CONFIG  # training side only; imported when needed

    return {**DEFAULT_SIM_CONFIG, "config": DEFAULT_SIM_CONFIG}


def _env_default(key: str) -> Any:
    node: Any = _env_defaults()
    for part in key.split(".")[1:]:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _typed_open(name: str, value: Any) -> Any:
    """A value under an open group, typed against the sim's default where there is one."""
    if isinstance(value, Mapping):
        return {k: _typed_open(f"{name}.{k}", v) for k, v in value.items()}
    default = _env_default(name)
    return (
        copy.deepcopy(value)
        if default is None or isinstance(default, Mapping)
        else typed(name, value, default)
    )


def check_env_types(env: Mapping[str, Any], where: str = "env.") -> None:
    """Type-check the ``env`` group against the sim's defaults where it has them, and refuse
    unknown keys inside the sim config's groups (``env.reward.X``); ranges and unknown top-level
    keys (PiDogEnv's own arguments) are the env's to judge, at preflight."""
    defaults = _env_defaults()

    def walk(node: Mapping[str, Any], schema: Any, prefix: str) -> None:
        for key, value in node.items():
            default = schema.get(key) if isinstance(schema, Mapping) else None
            if schema is not defaults and isinstance(schema, Mapping) and key not in schema:
                raise ConfigError(f"unknown option '{prefix}{key}'; valid options: {sorted(schema)}")
            if isinstance(value, Mapping):
                walk(value, default, f"{prefix}{key}.")
            elif isinstance(default, Mapping):
                if value is not None:  # None: PiDogEnv's own default for the group
                    raise ConfigError(f"option '{prefix}{key}' must be a mapping, got {value!r}")
            elif default is not None:
                typed(f"{prefix}{key}", value, default)

    walk(env, defaults, where)


def read_structured_file(path: str | os.PathLike[str], what: str = "config file") -> Any:
    """Parse a JSON (by suffix) or YAML file; ConfigError names ``what`` and the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} '{path}': cannot read it ({exc.strerror or exc})") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{what} '{path}' is malformed: {exc}") from None


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML or JSON file of nested overrides; ConfigError names the file when it is bad."""
    path = Path(path)
    data = read_structured_file(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of options (e.g. 'ppo: {{n_steps: 256}}'), "
            f"got {type(data).__name__}"
        )
    try:
        merge(DEFAULT_CONFIG, data)
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from None
    return dict(data)


def config_source(spec: str) -> tuple[str | None, dict[str, Any]]:
    """``--config`` value: a preset name -> (name, {}), a file -> (None, its overrides)."""
    if spec in PRESETS:
        return spec, {}
    if Path(spec).suffix in CONFIG_FILE_SUFFIXES or Path(spec).exists():
        return None, load_config_file(spec)
    raise ConfigError(
        f"--config {spec!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a "
        f"{'/'.join(CONFIG_FILE_SUFFIXES)} file"
    )


def resolve_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults <- preset <- overrides, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown config preset '{preset}'; choose one of {sorted(PRESETS)}")
    config = merge(merge(DEFAULT_CONFIG, PRESETS[preset]), overrides)
    validate_config(config)
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"ppo": {"n_steps": 1}} -> {"ppo.n_steps": 1} (ROS parameter names)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def as_json(value: Any) -> Any:
    """A value as a saved config.json holds it, to compare options: a tuple and a list of the
    same values agree."""
    return json.loads(json.dumps(value))


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


# --- validation ---------------------------------------------------------------------------------


def _int(config: Mapping[str, Any], name: str, minimum: int) -> None:
    value = _get(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"option '{name}' must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"option '{name}' must be >= {minimum}, got {value}")


def _float(
    config: Mapping[str, Any], name: str, low: float, high: float = math.inf, low_open: bool = False
) -> None:
    value = _get(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"option '{name}' must be a finite number, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(
            f"option '{name}' must be {bound}"
            + (f" and <= {high}" if high < math.inf else "")
            + f", got {value}"
        )


def _range(config: Mapping[str, Any], name: str) -> None:
    value = _get(config, name)
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value)
    ):
        raise ConfigError(f"option '{name}' must be a range [low, high] of two finite numbers, got {value!r}")
    if value[0] > value[1]:
        raise ConfigError(f"option '{name}' must have low <= high, got {list(value)}")


def _bool(config: Mapping[str, Any], name: str) -> None:
    if not isinstance(_get(config, name), bool):
        raise ConfigError(f"option '{name}' must be true or false, got {_get(config, name)!r}")


def _optional_str(config: Mapping[str, Any], name: str) -> None:
    value = _get(config, name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"option '{name}' must be a non-empty string or unset, got {value!r}")


def _get(config: Mapping[str, Any], name: str) -> Any:
    node: Any = config
    for part in name.split("."):
        node = node[part]
    return node


def with_saved_before(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved run's config with each option it predates set to what it did then (SAVED_BEFORE)."""
    out = copy.deepcopy(dict(saved))
    for name, value in SAVED_BEFORE.items():
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, copy.deepcopy(value))
    return out


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first option whose value makes no sense."""
    for name in ("n_demo_episodes", "total_bc_epochs", "n_envs", "torch_threads"):
        _int(config, name, 1)
    for name in ("total_rl_timesteps", "visualize_freq", "seed", "physics_threads", "update_threads"):
        _int(config, name, 0)
    _float(config, "learning_rate", 0.0, low_open=True)
    for name in (
        "use_camera",
        "skip_bc",
        "no_bc_init",
        "progress_bar",
        "demos.drop_falls",
        "policy.privileged_critic",
    ):
        _bool(config, name)
    for name in ("experiment_name", "pretrained_model", "expert_model"):
        _optional_str(config, name)
    if not isinstance(config["output_dir"], str) or not config["output_dir"].strip():
        raise ConfigError(f"option 'output_dir' must be a non-empty path, got {config['output_dir']!r}")
    name = config["experiment_name"]
    if name is not None and ("/" in name or name in (".", "..")):
        raise ConfigError(f"option 'experiment_name' must be a plain folder name, got {name!r}")
    bags = config["demo_bag"]
    if not isinstance(bags, list | tuple) or not all(isinstance(b, str) and b for b in bags):
        raise ConfigError(f"option 'demo_bag' must be a list of paths, got {bags!r}")
    if config["skip_bc"] and not config["pretrained_model"]:
        raise ConfigError(
            "option 'skip_bc' needs 'pretrained_model' (--pretrained-model PATH): nothing to start PPO from"
        )
    if config["no_bc_init"] and config["pretrained_model"]:
        raise ConfigError("options 'no_bc_init' and 'pretrained_model' contradict each other: choose one")

    # The env options' values are checked by PiDogEnv itself (pipeline preflight); here only
    # their types, against the sim's defaults.
    if not isinstance(config["env"], Mapping):
        raise ConfigError(f"option 'env' must be a mapping of PiDogEnv options, got {config['env']!r}")
    check_env_types(config["env"])
    if config["curriculum"]:  # its values are the simulator's to judge: pipeline preflight
        from .curriculum import check_stages  # brings MuJoCo's task module: only when there is one

        check_stages(config["curriculum"])
    _float(config, "demos.episode_seconds", 0.0, low_open=True)
    _float(config, "demos.action_noise", 0.0, 1.0)

    arch = config["policy"]["net_arch"]
    if not isinstance(arch, list | tuple) or not arch or not all(isinstance(n, int) and n > 0 for n in arch):
        raise ConfigError(f"option 'policy.net_arch' must be a list of positive layer sizes, got {arch!r}")
    if config["policy"]["activation"] not in ACTIVATIONS:
        raise ConfigError(
            f"option 'policy.activation' must be one of {ACTIVATIONS}, got {config['policy']['activation']!r}"
        )
    _float(config, "policy.initial_log_std", -5.0, 1.0)
    exploration = config["policy"]["exploration"]
    if exploration not in EXPLORATIONS:
        raise ConfigError(f"option 'policy.exploration' must be one of {EXPLORATIONS}, got {exploration!r}")
    if config["policy"]["action_prior"] not in ACTION_PRIORS:
        raise ConfigError(
            f"option 'policy.action_prior' must be one of {ACTION_PRIORS}, got {config['policy']['action_prior']!r}"
        )

    _float(config, "bc.learning_rate", 0.0, low_open=True)
    _int(config, "bc.batch_size", 1)
    _float(config, "bc.validation_fraction", 0.0, 0.5)
    _float(config, "bc.weight_decay", 0.0)

    for name in ("ppo.n_steps", "ppo.batch_size", "ppo.n_epochs"):
        _int(config, name, 1)
    if config["ppo"]["n_steps"] < 2:
        raise ConfigError("option 'ppo.n_steps' must be >= 2 (PPO needs a rollout to estimate advantages)")
    _float(config, "ppo.gamma", 0.0, 1.0, low_open=True)
    _float(config, "ppo.gae_lambda", 0.0, 1.0)
    _float(config, "ppo.clip_range", 0.0, 1.0, low_open=True)
    _float(config, "ppo.reward_scale", 0.0, low_open=True)
    for name in (
        "ppo.ent_coef",
        "ppo.vf_coef",
        "ppo.target_kl",
        "ppo.symmetry_loss_weight",
        "ppo.smoothness_loss_weight",
    ):
        _float(config, name, 0.0)
    _float(config, "ppo.smoothness_sigma", 0.0, 1.0, low_open=True)
    # Both act on the state observation: the mirror map and the perturbation know no image.
    for key in ("symmetry_loss_weight", "smoothness_loss_weight"):
        if config["use_camera"] and config["ppo"][key] > 0:
            raise ConfigError(f"option 'ppo.{key}' needs state observations: set it to 0 with use_camera")
    _float(config, "ppo.max_grad_norm", 0.0, low_open=True)

    _int(config, "finetune.critic_warmup_timesteps", 0)
    _float(config, "finetune.actor_lr_scale", 0.0, 1.0, low_open=True)
    _float(config, "finetune.log_std_lr_scale", 0.0, 100.0, low_open=True)
    _float(config, "finetune.bc_loss_weight", 0.0)
    _float(config, "finetune.bc_loss_decay", 0.0, 1.0)
    _int(config, "finetune.bc_loss_batch_size", 1)
    _float(config, "finetune.bc_loss_min_weight", 0.0)
    _int(config, "finetune.bc_loss_decay_timesteps", 1)
    _float(config, "finetune.bc_keep_weight", 0.0)
    for axis in ("vx", "wz"):
        _range(config, f"finetune.bc_keep_commands.{axis}")
    _float(config, "finetune.handover_bc_weight", 0.0)
    _float(config, "finetune.handover_actor_lr_scale", 0.0, 1.0, low_open=True)
    _float(config, "finetune.handover_log_std", -5.0, 1.0)
    _float(config, "finetune.noise_anneal_from", 0.0, 1.0)
    _float(config, "finetune.final_log_std", -5.0, 1.0)
    _int(config, "ppo.sde_sample_freq", -1)
    if config["ppo"]["sde_sample_freq"] == 0:
        raise ConfigError(
            "option 'ppo.sde_sample_freq' must be -1 (once per rollout) or a positive step count, got 0"
        )
    if exploration == "gsde":
        # Both set the log-std directly as an action std: under gSDE it weights hidden units.
        for name, off in (("finetune.noise_anneal_from", 1.0), ("finetune.handover_bc_weight", 0.0)):
            group, key = name.split(".")
            if config[group][key] != off:
                raise ConfigError(
                    f"option '{name}' is not supported with policy.exploration='gsde' (leave it at {off})"
                )

    _int(config, "eval.freq", 0)
    for name in ("eval.episodes", "eval.final_episodes"):
        _int(config, name, 1)
    for name in ("eval.seconds", "eval.final_seconds", "eval.video_seconds"):
        _float(config, name, 0.0, low_open=True)
    _int(config, "eval.seed", 0)
    _int(config, "eval.tracking_episodes", 0)
    _float(config, "eval.tracking_settle_seconds", 0.0)
    _float(config, "eval.tracking_seconds", config["eval"]["tracking_settle_seconds"], low_open=True)
    _int(config, "eval.keyboard_episodes", 0)
    _float(config, "eval.keyboard_seconds", config["eval"]["tracking_settle_seconds"], low_open=True)

    _bool(config, "calibration.enabled")
    _bool(config, "calibration.randomize")
    _int(config, "calibration.episodes", 1)
    _int(config, "calibration.seed", 0)
    # pidog_sim.evaluation.TRACKING_SETTLE_S (not imported here: it brings MuJoCo); calibrate()
    # checks against the constant itself.
    _float(config, "calibration.seconds", 2.0, low_open=True)

    _optional_str(config, "ray.address")
    _int(config, "ray.workers_per_node", 1)
    _int(config, "ray.cpus_per_worker", 0)
    _bool(config, "ray.include_learner_node")
