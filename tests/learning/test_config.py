"""Options: the guide's flags and defaults, presets, and errors that name the option."""

from __future__ import annotations

import pytest

from pidog_learning.config import DEFAULT_CONFIG, PRESETS, ConfigError, flatten, resolve_config, unflatten
from pidog_learning.train_cli import build_parser, explicit_options


def test_guide_flags_have_the_guides_defaults() -> None:
    args = build_parser().parse_args([])
    assert explicit_options(args) == {}, "no flag given must mean: take the preset/default"
    config = resolve_config("default", explicit_options(args))
    assert config["n_demo_episodes"] == 50
    assert config["total_bc_epochs"] == 200
    assert config["total_rl_timesteps"] == 500_000
    assert config["n_envs"] == 4
    assert config["visualize_freq"] == 50_000
    assert config["learning_rate"] == 3e-4
    assert config["use_camera"] is False
    assert config["output_dir"] == "outputs"
    assert config["experiment_name"] is None
    assert config["seed"] == 42
    assert config["pretrained_model"] is None
    assert config["skip_bc"] is False


def test_flags_override_the_preset() -> None:
    args = build_parser().parse_args(
        [
            "--config",
            "tiny",
            "--n-envs",
            "3",
            "--use-camera",
            "--demo-bag",
            "a.mcap",
            "b",
            "--learning-rate",
            "1e-4",
        ]
    )
    config = resolve_config(args.config, explicit_options(args))
    assert config["n_envs"] == 3 and config["use_camera"] is True and config["learning_rate"] == 1e-4
    assert config["demo_bag"] == ["a.mcap", "b"]
    assert config["total_bc_epochs"] == PRESETS["tiny"]["total_bc_epochs"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_valid(preset: str) -> None:
    resolve_config(preset)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"n_envs": 0}, "n_envs"),
        ({"total_bc_epochs": -3}, "total_bc_epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"seed": "x"}, "seed"),
        ({"ppo": {"n_steps": 1}}, "ppo.n_steps"),
        ({"policy": {"activation": "sigmoid"}}, "policy.activation"),
        ({"bogus": 1}, "bogus"),
        ({"eval": {"episodes": 0}}, "eval.episodes"),
    ],
)
def test_bad_values_are_refused_by_name(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        resolve_config("default", overrides)


def test_flatten_round_trips_to_ros_parameter_names() -> None:
    flat = flatten(DEFAULT_CONFIG)
    assert flat["ppo.n_steps"] == DEFAULT_CONFIG["ppo"]["n_steps"]
    assert unflatten(flat) == DEFAULT_CONFIG
