"""Batched episodes (pidog_sim.rollout): a row of the batch is the single-robot episode of the
same seed, so evaluations and demonstrations read the same whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.spec import ACTION_DIM, OBS_SLICES
from pidog_sim.controllers import TrotController
from pidog_sim.env import PiDogEnv
from pidog_sim.evaluation import TRACKING_GRID, evaluate, evaluate_tracking, run_episode
from pidog_sim.rollout import run_episodes

SEEDS = [7, 8, 9, 10, 11]
SECONDS = 4.0
TROT = TrotController()


def test_each_batched_episode_is_the_single_robot_episode_of_its_seed() -> None:
    records = run_episodes(TrotController(), SEEDS, env_config={"episode_seconds": SECONDS}, record=True)
    assert [r.seed for r in records] == SEEDS
    env = PiDogEnv(episode_seconds=SECONDS)
    try:
        for record, seed in zip(records, SEEDS, strict=True):
            obs, _ = env.reset(seed=seed)
            states = []
            for action in record.actions:
                states.append(obs)
                obs, *_ = env.step(action)
            np.testing.assert_array_equal(np.array(record.states), np.array(states))
            single = run_episode(env, TrotController(), seed)
            assert (record.steps, record.fell) == (single.steps, single.fell)
            assert record.mean_forward() == single.forward_speed
            assert record.yaw_rate() == single.yaw_rate
            assert record.total_return == pytest.approx(single.total_return, rel=1e-12)
    finally:
        env.close()


def collapse_when_backward(obs: np.ndarray) -> np.ndarray:
    """Trots forward; told to walk backward it throws every joint to its limit and falls."""
    if obs[OBS_SLICES["command"]][0] < 0:
        return np.ones(ACTION_DIM, dtype=np.float32)
    return TROT(obs)


def test_episodes_of_different_lengths_refill_the_batch_and_come_back_in_seed_order() -> None:
    """A fall ends an episode early; its row starts the next seed at once."""
    config = {"episode_seconds": 3.0}
    commands = [[0.1, 0.0], [-0.1, 0.0]] * 3
    wide = run_episodes(collapse_when_backward, range(6), env_config=config, commands=commands)
    narrow = run_episodes(collapse_when_backward, range(6), env_config=config, commands=commands, max_batch=2)
    assert [r.fell for r in wide] == [False, True] * 3 and max(r.steps for r in wide if r.fell) < 50
    assert [r.index for r in narrow] == list(range(6))
    for a, b in zip(wide, narrow, strict=True):
        assert (a.steps, a.fell, a.mean_forward(), a.yaw_rate()) == (
            b.steps,
            b.fell,
            b.mean_forward(),
            b.yaw_rate(),
        )


class CountingTrot(TrotController):
    """A controller with state (``reset``): its episodes must not share a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.resets = 0
        self.calls_since_reset = 0
        self.longest = 0

    def reset(self) -> None:
        self.resets += 1
        self.calls_since_reset = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.calls_since_reset += 1
        self.longest = max(self.longest, self.calls_since_reset)
        return super().__call__(obs)


def test_a_controller_with_state_runs_its_episodes_one_at_a_time() -> None:
    controller = CountingTrot()
    records = run_episodes(controller, [1, 2, 3], env_config={"episode_seconds": 1.0})
    assert controller.resets == 3
    assert controller.longest == max(r.steps for r in records) == 50


def test_the_tracking_grid_reads_the_same_batched_as_one_robot_at_a_time() -> None:
    """Gait quality is pooled over one meter per batch row; with a batch of one, one meter
    sees every episode in turn, as the grid measured before it was batched."""
    kwargs = {"commands": TRACKING_GRID[:4], "seconds": 3.0, "settle_seconds": 1.0, "seed": 5}
    batched = evaluate_tracking(TrotController(), **kwargs)
    single = evaluate_tracking(TrotController(), max_batch=1, **kwargs)
    for key in ("mean_abs_vx_error", "mean_abs_wz_error", "falls", "median_clearance_mm", "lift_trips"):
        assert batched[key] == single[key], key
    for key in ("mean_stance_slip_mps", "cost_of_transport", "low_g_percent", "longest_low_g_s"):
        assert batched[key] == pytest.approx(single[key], rel=1e-9), key
    assert [r["vx"] for r in batched["commands"]] == [r["vx"] for r in single["commands"]]


def test_evaluate_reads_the_same_filmed_or_batched(tmp_path) -> None:
    """Filming runs the episodes in one PiDogEnv; the numbers must not depend on it."""
    batched = evaluate(TrotController(), episodes=2, seconds=1.0, seed=3)
    filmed = evaluate(TrotController(), episodes=2, seconds=1.0, seed=3, video_path=tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").stat().st_size > 0
    assert batched["per_episode_speed_mps"] == filmed["per_episode_speed_mps"]
    assert batched["per_episode_return"] == pytest.approx(filmed["per_episode_return"], rel=1e-12)
