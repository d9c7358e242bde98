"""Bad input is refused before any training, with a message that says what is wrong."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from learning_helpers import TINY_KWARGS, run_train

from pidog_learning.bc import checkpoint_metadata, save_policy_weights
from pidog_learning.networks import make_policy


def refused(tmp_path: Path, *args: str) -> str:
    """Run pidog-train; assert it exits 2 without creating the experiment; return stderr."""
    code, _out, err = run_train(
        "--config", "tiny", "--output-dir", str(tmp_path), "--experiment-name", "exp", *args
    )
    assert code == 2, f"expected a refusal, got exit {code}: {err}"
    assert not (tmp_path / "exp").exists(), "nothing may be written for a refused run"
    return err


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--n-demo-episodes", "0", "--n-demo-episodes"),
        ("--total-bc-epochs", "-1", "--total-bc-epochs"),
        ("--total-rl-timesteps", "-5", "--total-rl-timesteps"),
        ("--n-envs", "0", "--n-envs"),
        ("--visualize-freq", "-1", "--visualize-freq"),
        ("--learning-rate", "0", "--learning-rate"),
        ("--learning-rate", "nan", "--learning-rate"),
    ],
)
def test_nonsense_budgets_are_refused(tmp_path: Path, flag: str, value: str, named: str) -> None:
    assert named in refused(tmp_path, flag, value)


def test_pretrained_model_missing(tmp_path: Path) -> None:
    err = refused(tmp_path, "--pretrained-model", str(tmp_path / "nope.pth"))
    assert "--pretrained-model" in err and "not found" in err


@pytest.mark.parametrize("suffix", [".pth", ".zip"])
def test_pretrained_model_corrupt(tmp_path: Path, suffix: str) -> None:
    bad = tmp_path / f"corrupt{suffix}"
    bad.write_bytes(b"\x00garbage" * 50)
    err = refused(tmp_path, "--pretrained-model", str(bad))
    assert "corrupt" in err and str(bad) in err


def test_pretrained_model_of_another_architecture(tmp_path: Path) -> None:
    other = {**TINY_KWARGS, "hidden_sizes": [16]}
    path = save_policy_weights(
        make_policy(other, False), tmp_path / "w.pth", checkpoint_metadata(other, False)
    )
    err = refused(tmp_path, "--pretrained-model", str(path))
    assert "hidden_sizes" in err and "[16]" in err


def test_pretrained_model_of_another_observation_layout(tmp_path: Path) -> None:
    meta = {**checkpoint_metadata(TINY_KWARGS, False), "obs_layout_version": "pidog-obs-v0", "obs_dim": 30}
    path = save_policy_weights(make_policy(TINY_KWARGS, False), tmp_path / "w.pth", meta)
    err = refused(tmp_path, "--pretrained-model", str(path))
    assert "pidog-obs-v0" in err and "observation layout" in err


def test_pretrained_model_that_is_a_pickle_is_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    # Any non-tensor object: torch.load(weights_only=True) must refuse to rebuild it.
    torch.save({"state_dict": argparse.Namespace(cmd="rm -rf ~"), "metadata": {}}, path)
    assert "corrupt" in refused(tmp_path, "--pretrained-model", str(path))


def test_skip_bc_without_a_pretrained_model(tmp_path: Path) -> None:
    err = refused(tmp_path, "--skip-bc")
    assert "skip_bc" in err and "--pretrained-model" in err


def test_no_bc_init_contradicts_a_pretrained_model(tmp_path: Path) -> None:
    path = save_policy_weights(
        make_policy(TINY_KWARGS, False), tmp_path / "w.pth", checkpoint_metadata(TINY_KWARGS, False)
    )
    assert "contradict" in refused(tmp_path, "--no-bc-init", "--pretrained-model", str(path))


def test_expert_model_and_demo_bag_missing(tmp_path: Path) -> None:
    assert "--expert-model" in refused(tmp_path, "--expert-model", str(tmp_path / "expert.zip"))
    assert "--demo-bag" in refused(tmp_path, "--demo-bag", str(tmp_path / "missing_bag"))


def test_existing_experiment_folder_is_never_overwritten(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "policy.onnx").write_bytes(b"precious")
    code, _out, err = run_train("--config", "tiny", "--output-dir", str(tmp_path), "--experiment-name", "exp")
    assert code == 2 and "already exists" in err and "--resume" in err
    assert sorted(p.name for p in exp.iterdir()) == ["policy.onnx"]
    assert (exp / "policy.onnx").read_bytes() == b"precious"


def test_resume_of_something_that_is_not_an_experiment(tmp_path: Path) -> None:
    code, _out, err = run_train("--resume", str(tmp_path))
    assert code == 2 and "not an experiment folder" in err


@pytest.mark.parametrize(
    ("stage", "named"),
    [
        ('{"from_timesteps": 64, "env": {"physics_substeps": 5}}', "curriculum[0].env.physics_substeps"),
        (
            '{"from_timesteps": 64, "env": {"reward": {"foot_slip": "x"}}}',
            "curriculum[0].env.reward.foot_slip",
        ),
        # A value only the simulator can judge: refused at preflight, still before any work.
        ('{"from_timesteps": 64, "env": {"command_ranges": {"vx": [-1, 0.3]}}}', "curriculum[0].env"),
    ],
)
def test_a_curriculum_stage_that_cannot_apply_is_refused_before_any_work(
    tmp_path: Path, stage: str, named: str
) -> None:
    assert named in refused(tmp_path, "--set", f"curriculum=[{stage}]")
