"""WalkTask.update_config: a training curriculum changes the task while the robots run.

- a reward weight takes effect at the next step, a randomisation range at each robot's next
  reset, a latency beyond what the batch was built for works (its target history grows);
- options that shape state the task already built are refused by name, and a refused update
  changes nothing.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pidog_description import STAND_POSE
from pidog_sim.task import WalkTask

SAMPLE = {"command_mode": "sample", "episode_seconds": 2.0}


@pytest.fixture
def task():
    t = WalkTask(4, config=SAMPLE, threads=1)
    yield t
    t.close()


def walk(task: WalkTask, steps: int) -> list[dict]:
    """Trot-like joint wiggles, so the feet slide and lift."""
    out = []
    for k in range(steps):
        actions = 0.4 * np.sin(2 * np.pi * k / 20 + np.arange(8))[None, :].repeat(task.n, 0)
        out.append(task.step(actions))
    return out


def test_a_reward_weight_takes_effect_at_the_next_step(task: WalkTask) -> None:
    before = walk(task, 30)
    assert all(not np.any(s["terms"]["foot_slip"]) for s in before)  # off by default
    task.update_config({"reward": {"foot_slip": 5.0}})
    after = walk(task, 30)
    slip = np.array([s["terms"]["foot_slip"] for s in after])
    assert np.all(slip <= 0.0) and slip.min() < 0.0
    assert task.cfg["reward"]["track_vx"] == 1.5  # the rest of the group is kept


def test_a_randomisation_range_applies_from_each_robots_next_reset(task: WalkTask) -> None:
    assert np.all((task.sim.servo_strength >= 0.8) & (task.sim.servo_strength <= 1.2))
    task.update_config({"randomization": {"servo_strength": [1.25, 1.3]}})
    old = task.sim.servo_strength.copy()
    walk(task, 2)
    np.testing.assert_array_equal(task.sim.servo_strength, old)  # running episodes keep theirs
    task.reset(np.array([1, 2]), seeds=np.array([7, 8]))
    reset = task.sim.servo_strength[[1, 2]]
    assert np.all((reset >= 1.25) & (reset <= 1.3)), reset
    np.testing.assert_array_equal(task.sim.servo_strength[[0, 3]], old[[0, 3]])


def test_a_latency_beyond_the_batchs_history_delays_the_servos_by_that_many_steps(task: WalkTask) -> None:
    assert task.cfg["randomization"]["latency_steps"] == (0, 2)
    task.update_config({"randomization": {"latency_steps": [4, 4]}})
    task.reset(np.arange(task.n), seeds=np.arange(task.n))
    assert np.all(task.sim.latency_steps == 4)
    target = STAND_POSE + 0.3
    moved = []
    for _ in range(6):
        task.sim.step(np.tile(target, (task.n, 1)))
        moved.append(bool(np.any(np.abs(task.sim.servo_position - STAND_POSE) > 1e-9)))
    # The fifth command period is the first to act on the new target (4 steps late).
    assert moved == [False, False, False, False, True, True]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"episode_seconds": 5.0}, "episode_seconds"),
        ({"physics_substeps": 5}, "physics_substeps"),
        ({"nominal": {"servo_strength": 0.5}}, "nominal"),
        ({"reward": {"track_window_s": 1.0}}, "reward.track_window_s"),
        ({"reward": {"foot_slipp": 1.0}}, "foot_slipp"),
        ({"command_ranges": {"vx": [-2.0, 0.3]}}, "command_ranges['vx']"),
        ({"reward": {"track_vx_sigma": 0.0}}, "reward.track_vx_sigma"),
        # Options only the batch reads: a curriculum's bad value must not fall through to a default draw.
        ({"randomization": {"servo_strength_draw": "servo"}}, "randomization.servo_strength_draw"),
        ({"randomization": {"contact_timeconst": (0.03, 0.01)}}, "randomization.contact_timeconst"),
    ],
)
def test_an_update_that_cannot_apply_is_refused_by_name_and_changes_nothing(
    task: WalkTask, overrides: dict, named: str
) -> None:
    before = copy.deepcopy(task.cfg)
    with pytest.raises(ValueError) as info:
        task.update_config(overrides)
    assert named in str(info.value)
    assert task.cfg == before
