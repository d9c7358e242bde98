"""The demonstrations say how much the expert walked, and warn when it hardly did."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from learning_helpers import TINY

from pidog_description.spec import OBS_SLICES, action_filter_alpha
from pidog_learning.config import merge
from pidog_learning.demonstrations import Demonstrations
from pidog_learning.experts import (
    FORWARD_RATIO_WARN,
    collect_demonstrations,
    forward_ratio,
    weak_expert_warning,
)
from pidog_learning.pipeline import DEMOS_FILE, Pipeline, Reporter
from pidog_sim.controllers import TrotController

FORWARD = {"command_mode": "fixed", "forward_speed": 0.2}
# Issue 14's weakest, heaviest, slowest robot: 0.25 N·m servos, 1.15 kg, 2 steps of latency.
WEAK_HEAVY = {
    **FORWARD,
    "randomization": {
        "servo_strength": (0.7143, 0.7143),
        "mass_scale": (1.283, 1.283),
        "latency_steps": (2, 2),
    },
}


def _ratio(env: dict) -> tuple[float, str | None]:
    demos = collect_demonstrations(TrotController(), 3, 6.0, seed=0, env_kwargs=env, progress=False)
    ratio = demos.metadata["forward_ratio"]
    return ratio, weak_expert_warning("scripted trot", ratio)


def test_the_trot_walks_on_the_model_robot_and_hardly_at_all_on_a_weak_heavy_one() -> None:
    nominal, nominal_warning = _ratio(FORWARD)
    weak, weak_warning = _ratio(WEAK_HEAVY)
    assert nominal > 2 * FORWARD_RATIO_WARN and nominal_warning is None, nominal
    assert weak < FORWARD_RATIO_WARN < nominal, (weak, nominal)
    assert weak_warning is not None
    assert "scripted trot" in weak_warning and "--expert-model" in weak_warning


def test_no_forward_command_gives_no_ratio_and_no_warning() -> None:
    demos = collect_demonstrations(
        TrotController(),
        1,
        2.0,
        seed=0,
        env_kwargs={"command_mode": "fixed", "forward_speed": 0.0},
        progress=False,
    )
    assert demos.metadata["forward_ratio"] is None  # JSON has no NaN
    assert weak_expert_warning("scripted trot", demos.metadata["forward_ratio"]) is None
    assert math.isnan(forward_ratio([]))
    assert weak_expert_warning("scripted trot", float("nan")) is None


def test_pidog_train_warns_before_bc_when_its_expert_hardly_walks(tmp_path: Path) -> None:
    statuses: list[dict] = []
    config = merge(TINY, {"env": WEAK_HEAVY})
    pipeline = Pipeline(config, tmp_path, None, None, Reporter(on_status=statuses.append), None)
    pipeline.demonstrations()
    warnings = [s["message"] for s in statuses if s.get("message", "").startswith("warning:")]
    assert len(warnings) == 1 and "--expert-model" in warnings[0], statuses
    saved = Demonstrations.load(tmp_path / DEMOS_FILE).metadata["forward_ratio"]
    assert saved < FORWARD_RATIO_WARN


def _trot_expert(action_filter_hz: float):
    """The scripted trot as a trained expert that names the action filter it walks behind (as
    OnnxPolicy / policy_controller say)."""
    trot = TrotController()

    def expert(obs):
        return trot(obs)

    expert.action_filter_hz = action_filter_hz
    return expert


def _demonstrate(expert, run_filter_hz: float, episodes: int, seconds: float, action_noise: float = 0.0):
    """Its demonstrations, commanded forward, for a run behind ``run_filter_hz``."""
    return collect_demonstrations(
        expert,
        episodes,
        seconds,
        seed=0,
        env_kwargs={**FORWARD, "action_filter_hz": run_filter_hz},
        action_noise=action_noise,
        progress=False,
    )


def test_a_trained_expert_demonstrates_behind_its_own_action_filter_for_a_student_behind_the_runs() -> None:
    """An expert policy names the action filter it was trained behind; its demonstrations run
    it there (each recorded observation's last action is its filter's state), and its labels are
    the actions that make the run's filter execute what the expert's did: behind none (here),
    the executed actions themselves; behind the expert's own, its actions unchanged."""
    expert = _trot_expert(6.0)
    alpha = action_filter_alpha(6.0)
    none = _demonstrate(expert, 0.0, episodes=1, seconds=1.0)
    last = none.observations[:, OBS_SLICES["last_action"]]
    np.testing.assert_allclose(
        last[1:], none.actions[:-1], atol=1e-5
    )  # the student executes them as they are
    same = _demonstrate(expert, 6.0, episodes=1, seconds=1.0)
    np.testing.assert_array_equal(same.observations, none.observations)  # the same episode, behind 6 Hz
    np.testing.assert_allclose(last[1:], alpha * last[:-1] + (1 - alpha) * same.actions[:-1], atol=1e-5)
    assert np.abs(same.actions - none.actions).max() > 0.05
    # Each set says which filter its labels are for: the run's, not the expert's.
    assert none.action_filter_hz == 0.0 and same.action_filter_hz == 6.0
    # Undoing a faster filter never leaves the action range; nothing relabelled for the same one.
    assert none.metadata["labels_clipped"] == 0 and same.metadata["labels_clipped"] == 0


def test_labels_the_runs_filter_cannot_follow_are_clipped_and_counted() -> None:
    """An expert behind no filter demonstrating for a student behind 6 Hz, with DART noise on
    what it executes: where its next action lies further from the noisy last one than the filter
    can go in one step, the label that would execute it lies outside [-1, 1]; it is clipped, and
    the set counts those samples (the trot alone never jumps that far: 0 of 1,000; at noise 0.05,
    the default, 3; at 0.1, 42)."""
    expert = _trot_expert(0.0)
    alpha = action_filter_alpha(6.0)
    raw = _demonstrate(expert, 0.0, episodes=2, seconds=2.0, action_noise=0.1)
    demos = _demonstrate(expert, 6.0, episodes=2, seconds=2.0, action_noise=0.1)
    np.testing.assert_array_equal(demos.observations, raw.observations)  # the expert's own walks
    previous = raw.observations[:, OBS_SLICES["last_action"]]
    wanted = (raw.actions - alpha * previous) / (1 - alpha)
    outside = np.any(np.abs(wanted) > 1.0 + 1e-6, axis=1)
    assert outside.any()  # the trot moves faster than a 6 Hz filter follows somewhere
    assert demos.metadata["labels_clipped"] == int(outside.sum())
    assert np.abs(demos.actions).max() <= 1.0
