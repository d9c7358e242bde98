"""The batched core and its SB3 VecEnv: batching changes nothing but speed.

- robot i of a batch of N follows the trajectory of a batch of one with the same seed and
  actions, bit for bit (through automatic resets too);
- a bad action or a diverging simulation in one robot never touches the others;
- bad sizes are refused with the option's name.
"""

from __future__ import annotations

import numpy as np
import pytest

from pidog_description import STAND_POSE
from pidog_description.orientation_filter import ComplementaryFilter
from pidog_description.spec import IMU_READ_HZ, OBS_DIM, OBS_SLICES, gravity_from_quaternion
from pidog_sim.batch import BatchSim
from pidog_sim.model import foot_radii
from pidog_sim.task import WalkTask
from pidog_sim.vec_env import PiDogVecEnv

SAMPLE = {"command_mode": "sample", "episode_seconds": 1.5}


def random_actions(steps: int, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (steps, n, 8))


def run_vec(n: int, seeds: list[int], actions: np.ndarray, threads: int) -> tuple[np.ndarray, ...]:
    venv = PiDogVecEnv(n, physics_threads=threads, config=SAMPLE)
    venv._seeds = list(seeds)
    obs = [venv.reset()]
    states, rewards, dones = [], [], []
    for step_actions in actions:
        venv.step_async(step_actions)
        o, r, d, _ = venv.step_wait()
        obs.append(o)
        states.append(venv.task.sim.state.copy())
        rewards.append(r)
        dones.append(d)
    venv.close()
    return np.array(obs), np.array(states), np.array(rewards), np.array(dones)


def test_robot_in_a_batch_follows_the_trajectory_of_a_batch_of_one() -> None:
    n, steps = 6, 160  # 1.5 s episodes: every robot resets at least once (or falls sooner)
    seeds = [100 + i for i in range(n)]
    actions = random_actions(steps, n)
    obs_n, state_n, reward_n, done_n = run_vec(n, seeds, actions, threads=2)
    assert done_n.any(axis=0).all(), "every robot should have finished an episode"
    for i in (0, 3, 5):
        obs_1, state_1, reward_1, done_1 = run_vec(1, [seeds[i]], actions[:, i : i + 1], threads=1)
        np.testing.assert_allclose(state_n[:, i], state_1[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(obs_n[:, i], obs_1[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(reward_n[:, i], reward_1[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(done_n[:, i], done_1[:, 0])
    # Different seeds really are different robots.
    assert not np.allclose(state_n[:, 0], state_n[:, 1])


def test_non_finite_action_for_one_robot_never_touches_the_others() -> None:
    n, steps = 4, 60
    actions = random_actions(steps, n)
    poisoned = actions.copy()
    poisoned[10:, 2] = np.nan
    poisoned[20:30, 2, 3] = np.inf
    _, clean_states, _, _ = run_vec(n, [0, 1, 2, 3], actions, threads=2)
    obs, states, rewards, _ = run_vec(n, [0, 1, 2, 3], poisoned, threads=2)
    others = [0, 1, 3]
    np.testing.assert_array_equal(states[:, others], clean_states[:, others])
    assert np.isfinite(states).all() and np.isfinite(obs).all() and np.isfinite(rewards).all()
    # Robot 2's NaN actions mean "stand pose": its last action in the observation is zero.
    np.testing.assert_array_equal(obs[-1, 2, OBS_SLICES["last_action"]], 0.0)


def test_diverging_physics_resets_that_robot_counts_it_and_the_batch_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the divergence warning to MUJOCO_LOG.TXT in the cwd
    n = 3
    actions = random_actions(40, n)
    venv = PiDogVecEnv(n, physics_threads=2, config={"episode_seconds": 5.0})
    venv.seed(5)
    venv.reset()
    reference = PiDogVecEnv(n, physics_threads=2, config={"episode_seconds": 5.0})
    reference.seed(5)
    reference.reset()
    for t, step_actions in enumerate(actions):
        if t == 20:
            venv.task.sim.qvel[1, :] = 1e30  # an exploded state, as a bad contact would give
        obs, _, dones, infos = venv.step(step_actions)
        ref_obs, _, _, _ = reference.step(step_actions)
        assert np.isfinite(obs).all()
        if t == 20:
            assert dones[1] and infos[1].get("unstable"), "the diverged robot must end its episode"
            assert not dones[0] and not dones[2]
    assert venv.unstable_resets == 1
    np.testing.assert_array_equal(obs[[0, 2]], ref_obs[[0, 2]])
    # The reset robot is back on its feet and walks on with the batch.
    assert venv.task.sim.base_position()[1, 2] > 0.05
    venv.close()
    reference.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n": 0}, "n_envs"), ({"n": -3}, "n_envs"), ({"n": 2, "threads": 0}, "physics_threads")],
)
def test_bad_sizes_are_refused_by_name(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        BatchSim(**kwargs)


def test_vec_env_follows_sb3_conventions() -> None:
    venv = PiDogVecEnv(3, physics_threads=1, config={"episode_seconds": 0.2})
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (3, OBS_DIM) and obs.dtype == np.float32
    for _ in range(9):
        obs, rewards, dones, infos = venv.step(np.zeros((3, 8)))
        assert not dones.any()
    obs, rewards, dones, infos = venv.step(np.zeros((3, 8)))
    assert dones.all() and rewards.shape == (3,)
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["l"] == 10
        assert info["terminal_observation"].shape == (OBS_DIM,)
        # The returned observation starts a new episode: the gait clock is back at phase 0.
        np.testing.assert_allclose(obs[i, OBS_SLICES["phase"]], [0.0, 1.0], atol=1e-6)
        assert not np.allclose(info["terminal_observation"][OBS_SLICES["phase"]], [0.0, 1.0])
    assert set(venv.reward_term_means()) >= {"track_vx", "track_wz", "alive"}
    venv.close()


def test_sampled_commands_cover_standing_turning_in_place_and_change_within_episodes() -> None:
    task = WalkTask(64, config={"command_mode": "sample", "command_resample_s": (0.2, 0.4)}, threads=1)
    first = task.command.copy()
    seen = [first]
    for _ in range(25):
        task.step(np.zeros((64, 8)))
        seen.append(task.command.copy())
    seen = np.concatenate(seen)
    assert not np.allclose(task.command, first), "commands are resampled within the episode"
    standing = np.all(seen == 0.0, axis=1)
    in_place = (seen[:, 0] == 0.0) & (seen[:, 1] != 0.0)
    assert standing.any() and in_place.any()
    assert seen[:, 0].min() < -0.05 and seen[:, 0].max() > 0.2  # backward and fast forward
    assert seen[:, 1].min() < -0.7 and seen[:, 1].max() > 0.7
    task.close()


@pytest.mark.parametrize(("option", "value"), [("n_envs", 0), ("physics_threads", -1)])
def test_pipeline_refuses_bad_batch_sizes_by_name(option: str, value: int) -> None:
    from pidog_learning.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match=option):
        resolve_config("default", {option: value})


def test_filtered_imu_orientation_is_hw_nodes_filter_over_the_simulated_imu() -> None:
    """imu_orientation "filter": the policy sees what hw_node would publish, its complementary
    filter run at 100 Hz over the simulated gyro (bias included) and accelerometer, not a
    second estimator; the truth with white noise stays the default."""
    sim = BatchSim(2, randomize=True, config={"imu_orientation": "filter"})
    assert int(round(1 / (IMU_READ_HZ * sim.control_dt / sim.substeps))) == 5  # 100 Hz at 500 Hz physics
    shadow = ComplementaryFilter(gain=2.0)
    rng = np.random.default_rng(3)
    targets = sim.servo_position.copy()
    errors = []
    for _ in range(150):
        targets = np.clip(targets + rng.normal(0, 0.05, targets.shape), -1.2, 1.2)
        sim.step(targets)
        for k in (4, 9):  # the physics steps at 100 Hz within the 10 of a control step
            s = sim._out_sensors[:, k]
            shadow.update(s[:, sim._s_gyro] + sim.gyro_bias, s[:, sim._s_accel], 0.01)
        quat, _, _ = sim.imu()
        np.testing.assert_allclose(quat, shadow.q, atol=1e-12)
        truth = gravity_from_quaternion(sim.base_quaternion())
        errors.append(np.degrees(np.arccos(np.clip(np.sum(gravity_from_quaternion(quat) * truth, 1), -1, 1))))
    # Thrashing joints shake the body: the estimate lags and leans, as on the robot, but stays an estimate.
    assert 0.2 < np.median(errors) < 20.0
    # A reset starts the estimate over from the accelerometer: a standing robot reads level.
    sim.reset(np.array([0]))
    quat, _, _ = sim.imu(np.array([0]))
    up = gravity_from_quaternion(quat)[0]
    assert np.degrees(np.arccos(-up[2])) < 1.0


def test_unknown_imu_orientation_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="imu_orientation"):
        BatchSim(1, config={"imu_orientation": "kalman"})


def test_contact_time_constant_sets_how_far_a_standing_robots_feet_sink() -> None:
    """nominal.contact_timeconst: a stiffer floor contact (a shorter time constant) lets the
    feet of a robot standing on it sink less; None keeps the model's own (MuJoCo's 20 ms)."""
    sunk = []
    for timeconst in (0.005, None, 0.04):
        sim = BatchSim(1, randomize=False, config={"nominal": {"contact_timeconst": timeconst}}, threads=1)
        for _ in range(50):  # 1 s standing: settled
            sim.step(STAND_POSE[None])
        soles = sim.foot_positions()[0, :, 2] - foot_radii(sim.models[0])
        sunk.append(-float(soles.min()))
        assert sim.contact_timeconst[0] == pytest.approx(0.02 if timeconst is None else timeconst)
        sim.close()
    assert 0 < sunk[0] < sunk[1] / 3 and sunk[2] > 2 * sunk[1], sunk


def test_randomised_contact_time_constant_leaves_every_other_draw_as_it_was() -> None:
    """randomization.contact_timeconst draws per robot within its range, and switching it on
    changes no other randomised parameter: runs without it replay as they did."""
    plain = BatchSim(32, randomize=True, threads=1)
    soft = BatchSim(
        32, randomize=True, config={"randomization": {"contact_timeconst": (0.005, 0.04)}}, threads=1
    )
    assert np.all(plain.contact_timeconst == 0.02)
    drawn = soft.contact_timeconst
    assert np.all((drawn >= 0.005) & (drawn <= 0.04)) and np.ptp(drawn) > 0.02
    for i in (0, 17):
        np.testing.assert_allclose(soft.models[i].geom_solref[:, 0], drawn[i])
    for name in ("servo_strength", "servo_max_speed", "friction", "mass_scale", "latency_steps", "gyro_bias"):
        np.testing.assert_array_equal(getattr(soft, name), getattr(plain, name), err_msg=name)
    plain.close()
    soft.close()


def test_robot_wide_strength_draw_makes_whole_robots_weak_or_strong() -> None:
    """randomization.servo_strength_draw "robot": one strength per robot over the whole range,
    each servo within the joint spread of it; "joint" (the default) draws each servo alone, so no
    robot is weak all round. Switching it leaves every other draw as it was."""
    strengths = {"servo_strength": (0.7, 1.3)}
    per_joint = BatchSim(64, randomize=True, config={"randomization": strengths}, threads=1)
    per_robot = BatchSim(
        64, randomize=True, config={"randomization": {**strengths, "servo_strength_draw": "robot"}}, threads=1
    )
    joint_mean, robot_mean = per_joint.servo_strength.mean(axis=1), per_robot.servo_strength.mean(axis=1)
    assert joint_mean.min() > 0.8 and joint_mean.max() < 1.2  # eight draws average out
    assert robot_mean.min() < 0.76 and robot_mean.max() > 1.24  # whole robots near the range's ends
    spread = per_robot.servo_strength.max(axis=1) / per_robot.servo_strength.min(axis=1)
    assert spread.max() <= 1.05 / 0.95 + 1e-9  # each servo within +-5 % of its robot's draw
    np.testing.assert_allclose(
        per_robot.models[5].actuator_forcerange[:, 1] / per_joint.models[5].actuator_forcerange[:, 1],
        per_robot.servo_strength[5] / per_joint.servo_strength[5],
    )
    for name in ("servo_max_speed", "friction", "mass_scale", "latency_steps", "gyro_bias"):
        np.testing.assert_array_equal(getattr(per_robot, name), getattr(per_joint, name), err_msg=name)
    per_joint.close()
    per_robot.close()
    pinned = BatchSim(
        4,
        randomize=True,
        config={"randomization": {"servo_strength": (0.9, 0.9), "servo_strength_draw": "robot"}},
        threads=1,
    )
    np.testing.assert_allclose(pinned.servo_strength, 0.9)  # a one-value range: that value, no spread
    pinned.close()


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ({"randomization": {"servo_strength_draw": "servo"}}, "randomization.servo_strength_draw"),
        (
            {"randomization": {"servo_strength_joint_spread": 1.5}},
            "randomization.servo_strength_joint_spread",
        ),
        ({"nominal": {"contact_timeconst": 0.001}}, "nominal.contact_timeconst"),
        ({"nominal": {"contact_timeconst": "stiff"}}, "nominal.contact_timeconst"),
        ({"randomization": {"contact_timeconst": (0.03, 0.01)}}, "randomization.contact_timeconst"),
        ({"randomization": {"contact_timeconst": (0.005, 0.5)}}, "randomization.contact_timeconst"),
        ({"randomization": {"contact_timeconst": 0.01}}, "randomization.contact_timeconst"),
    ],
)
def test_bad_randomisation_options_are_refused_by_name(config: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        BatchSim(1, config=config, threads=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nominal": {"stiffness": 1.0}}, "unknown sim config option 'nominal.stiffness'"),
        ({"randomization": 0.5}, "sim config option 'randomization' must be a mapping"),
    ],
)
def test_unknown_or_malformed_options_are_refused_by_their_whole_path(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchSim(1, config=config, threads=1)
