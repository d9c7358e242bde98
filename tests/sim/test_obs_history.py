"""The observation history (sim config ``obs_history``): the simulator keeps the frames the
policy node and the bag importer keep, and nothing else about the run changes."""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description.spec import FRAME_DIM, OBS_DIM, with_history
from pidog_sim.controllers import TrotController
from pidog_sim.env import PiDogEnv
from pidog_sim.vec_env import PiDogVecEnv

CONFIG = {"episode_seconds": 0.5, "command_mode": "sample"}  # 25 steps: resets within the run


def test_the_batch_appends_the_past_frames_of_each_robots_own_episode() -> None:
    """Same seeds, same actions, with and without a history: the physics and the present values
    are the same, and the history is exactly the recorded present frames of each robot's
    episode (``spec.with_history``, the bag importer's way), restarting at every reset."""
    n, steps = 3, 60
    plain = PiDogVecEnv(n, physics_threads=1, config=CONFIG)
    stacked = PiDogVecEnv(n, physics_threads=1, config={**CONFIG, "obs_history": 2})
    assert stacked.observation_space.shape == (OBS_DIM + 2 * FRAME_DIM,)
    trot = TrotController()
    for venv in (plain, stacked):
        venv.seed(7)
    obs, obs_h = plain.reset(), stacked.reset()
    records, records_h = [obs], [obs_h]
    starts = [np.ones(n, dtype=bool)]
    for _ in range(steps):
        actions = trot(obs)
        obs, _, dones, _ = plain.step(actions)
        obs_h, _, dones_h, _ = stacked.step(actions)
        np.testing.assert_array_equal(dones, dones_h)
        records.append(obs)
        records_h.append(obs_h)
        starts.append(dones)  # the observation after a done is the new episode's first
    plain.close()
    stacked.close()
    assert np.sum(starts[1:]) >= n, "every robot restarted at least once"
    for robot in range(n):
        v1 = np.array([r[robot] for r in records])
        h2 = np.array([r[robot] for r in records_h])
        np.testing.assert_array_equal(h2[:, :OBS_DIM], v1)
        np.testing.assert_array_equal(h2, with_history(v1, np.array([s[robot] for s in starts]), 2))


def test_the_single_robot_env_has_the_history_too_and_a_bad_length_is_refused() -> None:
    env = PiDogEnv(obs_history=1, episode_seconds=1.0)
    obs, _ = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape == (OBS_DIM + FRAME_DIM,)
    np.testing.assert_array_equal(obs[OBS_DIM:], obs[:FRAME_DIM])  # no past yet: the first frame
    second, *_ = env.step(np.zeros(8))
    np.testing.assert_array_equal(second[OBS_DIM:], obs[:FRAME_DIM])
    env.close()
    with pytest.raises(ValueError, match="sim config option 'obs_history'.*got 11"):
        PiDogEnv(obs_history=11)
