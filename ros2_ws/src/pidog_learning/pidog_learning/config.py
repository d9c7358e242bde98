"""Pipeline configuration: every default in ONE plain dict, presets as partial overrides.

The top-level keys are the command-line options of ``pidog-train`` (underscored) and the ROS
parameters of the learning node; nested groups are tuning knobs (``ppo.n_steps`` as a ROS
parameter). ``resolve_config`` merges defaults <- preset <- explicit overrides and validates,
so a bad value is reported by name before any work starts.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    # --- the user's guide flags (same meaning and defaults) ---------------------------------
    "n_demo_episodes": 50,
    "total_bc_epochs": 200,
    "total_rl_timesteps": 500_000,  # 0 skips PPO fine-tuning
    "n_envs": 4,
    "visualize_freq": 50_000,  # timesteps between videos + curve refresh; 0 disables
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
    "torch_threads": 1,  # per process: 2 cores are shared by the env workers and the learner
    # Environment used for demonstrations, PPO and evaluation (PiDogEnv keyword arguments).
    "env": {"episode_seconds": 20.0, "command_mode": "fixed", "forward_speed": 0.2},
    "demos": {
        "episode_seconds": 20.0,
        # DART: the executed action gets Gaussian noise of this std (action units) while the
        # clean expert action is recorded, so the demos show how to recover from small errors.
        "action_noise": 0.05,
        "drop_falls": True,  # an episode ending in a fall teaches falling: leave it out
    },
    # initial_log_std: PPO's exploration noise at the start of fine-tuning, exp(-3) = 0.05 action
    # units (0.035 rad), the DART noise of the demos: the trot tolerates it, while std 0.37
    # (log-std -1) makes the stochastic policy fall in most episodes and PPO forgets the prior.
    "policy": {"net_arch": [256, 256], "activation": "tanh", "initial_log_std": -3.0},
    "bc": {"learning_rate": 1e-3, "batch_size": 256, "validation_fraction": 0.1, "weight_decay": 0.0},
    "ppo": {
        "n_steps": 1024,  # per env and rollout
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        # Early-stop an update that moves the policy too far; 0 disables. With the small
        # exploration std a few Adam steps already shift the mean by a lot of KL: keep it tight.
        "target_kl": 0.02,
    },
    # Measures against forgetting the BC prior during PPO.
    "finetune": {
        "critic_warmup_timesteps": 50_000,  # actor frozen while the random critic learns values
        "actor_lr_scale": 0.1,  # actor steps at 0.1 x --learning-rate (see ppo_finetune.FinetunePPO)
        "bc_loss_weight": 0.1,  # DAPG-style BC term added to the PPO loss; 0 disables
        "bc_loss_decay": 0.98,  # weight multiplier per PPO update
        "bc_loss_batch_size": 256,
    },
    "eval": {
        "freq": 25_000,  # timesteps between evaluations (+ checkpoint + ONNX export); 0: only at the end
        "episodes": 5,
        "seconds": 10.0,
        "final_episodes": 10,
        "final_seconds": 20.0,
        "video_seconds": 8.0,
        "seed": 1000,  # evaluation episodes use seeds other than training's
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # `make demo`: every artifact in about ten minutes on two cores.
    "demo": {
        "n_demo_episodes": 20,
        "total_bc_epochs": 40,
        "total_rl_timesteps": 200_000,
        "n_envs": 2,
        "visualize_freq": 100_000,
        "ppo": {"n_steps": 1024, "batch_size": 256, "n_epochs": 5},
        "finetune": {"critic_warmup_timesteps": 10_240},
        "eval": {
            "freq": 25_000,
            "episodes": 3,
            "seconds": 8.0,
            "final_episodes": 5,
            "final_seconds": 10.0,
            "video_seconds": 6.0,
        },
    },
    # Tests: seconds per run, still every phase and artifact.
    "tiny": {
        "n_demo_episodes": 2,
        "total_bc_epochs": 3,
        "total_rl_timesteps": 256,
        "n_envs": 1,
        "visualize_freq": 256,
        "progress_bar": False,
        "env": {"episode_seconds": 2.0},
        "demos": {"episode_seconds": 2.0},
        "policy": {"net_arch": [32, 32]},
        "bc": {"batch_size": 64},
        "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
        "finetune": {"critic_warmup_timesteps": 64, "bc_loss_batch_size": 64},
        "eval": {
            "freq": 128,
            "episodes": 1,
            "seconds": 1.0,
            "final_episodes": 1,
            "final_seconds": 1.0,
            "video_seconds": 0.4,
        },
    },
}

# Options that describe a run rather than its identity: may change when resuming.
RESUMABLE_OVERRIDES: frozenset[str] = frozenset(
    {"total_rl_timesteps", "n_envs", "visualize_freq", "progress_bar", "torch_threads", "eval"}
)
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu")


class ConfigError(ValueError):
    """An option with a value that makes no sense; the message names the option."""


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any] | None, where: str = "") -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; unknown keys raise ConfigError."""
    merged = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        name = f"{where}{key}"
        if key not in merged:
            raise ConfigError(f"unknown option '{name}'; valid options: {sorted(merged)}")
        if isinstance(merged[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"option '{name}' must be a mapping, got {value!r}")
            merged[key] = merge(merged[key], value, where=f"{name}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first option whose value makes no sense."""
    for name in ("n_demo_episodes", "total_bc_epochs", "n_envs", "torch_threads"):
        _int(config, name, 1)
    for name in ("total_rl_timesteps", "visualize_freq", "seed"):
        _int(config, name, 0)
    _float(config, "learning_rate", 0.0, low_open=True)
    for name in ("use_camera", "skip_bc", "no_bc_init", "progress_bar", "demos.drop_falls"):
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

    # The env options are checked by PiDogEnv itself (pipeline preflight), not re-typed here.
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
    for name in ("ppo.ent_coef", "ppo.vf_coef", "ppo.target_kl"):
        _float(config, name, 0.0)
    _float(config, "ppo.max_grad_norm", 0.0, low_open=True)

    _int(config, "finetune.critic_warmup_timesteps", 0)
    _float(config, "finetune.actor_lr_scale", 0.0, 1.0, low_open=True)
    _float(config, "finetune.bc_loss_weight", 0.0)
    _float(config, "finetune.bc_loss_decay", 0.0, 1.0)
    _int(config, "finetune.bc_loss_batch_size", 1)

    _int(config, "eval.freq", 0)
    for name in ("eval.episodes", "eval.final_episodes"):
        _int(config, name, 1)
    for name in ("eval.seconds", "eval.final_seconds", "eval.video_seconds"):
        _float(config, name, 0.0, low_open=True)
    _int(config, "eval.seed", 0)
