"""The action filter (sim config ``action_filter_hz``): the simulator tells the servos the
low-passed action, the observation carries the filter's state, and the policy node's runtime
filters exactly as the simulator does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pidog_control.policy_runtime import ObservationBuilder
from pidog_description.spec import (
    CONTROL_DT,
    OBS_SLICES,
    action_filter_alpha,
    sanitized_action_to_target,
)
from pidog_sim.env import PiDogEnv
from pidog_sim.rollout import env_config_for
from pidog_sim.task import WalkTask

CUTOFF_HZ = 6.0
CONFIG = {"episode_seconds": 1.0, "command_mode": "fixed"}


class TargetSpy:
    """Records the joint targets WalkTask hands the physics (which still runs)."""

    def __init__(self, task: WalkTask) -> None:
        self.targets: list[np.ndarray] = []
        step = task.sim.step

        def recording_step(targets: np.ndarray) -> np.ndarray:
            self.targets.append(np.array(targets))
            return step(targets)

        task.sim.step = recording_step  # type: ignore[method-assign]


def test_the_servos_get_the_low_passed_action_and_the_observation_carries_it() -> None:
    alpha = action_filter_alpha(CUTOFF_HZ)
    assert alpha == pytest.approx(math.exp(-2 * math.pi * CUTOFF_HZ * CONTROL_DT))
    task = WalkTask(2, randomize=False, config={**CONFIG, "action_filter_hz": CUTOFF_HZ}, threads=1)
    plain = WalkTask(2, randomize=False, config=CONFIG, threads=1)
    spy, plain_spy = TargetSpy(task), TargetSpy(plain)
    step_input = np.full((2, 8), 0.5)
    for k in range(1, 6):
        task.step(step_input)
        plain.step(step_input)
        executed = 0.5 * (1.0 - alpha**k)  # a first-order step response, from the stand pose
        np.testing.assert_allclose(spy.targets[-1], sanitized_action_to_target(np.full((2, 8), executed)))
        np.testing.assert_allclose(task.observe()[:, OBS_SLICES["last_action"]], executed, rtol=1e-6)
        # Without the filter the servos get the action at once.
        np.testing.assert_allclose(plain_spy.targets[-1], sanitized_action_to_target(step_input))
    # A reset restarts the filter from the stand pose; the other robot carries on.
    before = task.last_action[1].copy()
    task.reset(np.array([0]), seeds=np.array([3]))
    task.step(np.stack([np.full(8, 0.5), np.full(8, -1.0)]))
    np.testing.assert_allclose(task.last_action[0], (1 - alpha) * 0.5)
    np.testing.assert_allclose(task.last_action[1], alpha * before + (1 - alpha) * -1.0)
    # Out-of-range and non-finite outputs are sanitised before the filter, as without it.
    task.step(np.stack([np.full(8, np.nan), np.full(8, 7.0)]))
    np.testing.assert_allclose(task.last_action[0], alpha * (1 - alpha) * 0.5)
    assert np.all(np.abs(task.last_action) <= 1.0)
    task.close()
    plain.close()


def test_the_policy_node_runtime_filters_as_the_simulator_does() -> None:
    """The same policy outputs (some out of range, some not finite) give the same executed
    actions and the same observed last action in the simulator and in the node's builder."""
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 0.8, (40, 8))
    raw[5, 2], raw[9, 7], raw[12] = np.nan, np.inf, 3.0
    task = WalkTask(1, randomize=False, config={**CONFIG, "action_filter_hz": CUTOFF_HZ}, threads=1)
    builder = ObservationBuilder(action_filter_hz=CUTOFF_HZ)
    builder.set_joints(np.zeros(8))
    builder.set_imu(np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3))
    for action in raw:
        task.step(action[None])
        executed = builder.advance(action)
        np.testing.assert_allclose(executed, task.last_action[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            builder.observation()[OBS_SLICES["last_action"]], task.observe()[0, OBS_SLICES["last_action"]]
        )
    task.close()
    # A policy without a filter, loaded in its place, gets its actions through unchanged.
    builder.set_action_filter(0.0)
    np.testing.assert_array_equal(builder.advance(np.full(8, 0.25)), np.full(8, 0.25))


@pytest.mark.parametrize("cutoff", [-1.0, 25.0, math.nan, "6", True])
def test_a_cutoff_that_is_not_one_is_refused_by_name(cutoff: object) -> None:
    with pytest.raises(
        ValueError,
        match=r"sim config option 'action_filter_hz' must be 0 \(no filter\) or a cutoff in \(0, 25\) Hz",
    ):
        PiDogEnv(action_filter_hz=cutoff)


def test_an_evaluation_runs_a_policy_behind_the_filter_it_was_trained_with() -> None:
    def policy(obs: np.ndarray) -> np.ndarray:
        return np.zeros(8)

    policy.action_filter_hz = CUTOFF_HZ  # type: ignore[attr-defined]  # as OnnxPolicy / policy_controller say
    assert env_config_for(policy, {"episode_seconds": 2.0})["action_filter_hz"] == CUTOFF_HZ
    with pytest.raises(
        ValueError, match="'action_filter_hz' is 0.0, but the policy was trained behind a 6 Hz"
    ):
        env_config_for(policy, {"action_filter_hz": 0.0})
    assert "action_filter_hz" not in env_config_for(lambda obs: obs, {})  # the scripted gaits name none
