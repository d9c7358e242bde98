"""The training curriculum (pidog_learning.curriculum): stages change PPO's env at their
timesteps, ramps move linearly, a resumed run catches up at once, and a stage that cannot apply
is refused by name before any work."""

from __future__ import annotations

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from pidog_learning.config import ConfigError, parse_assignments, resolve_config
from pidog_learning.curriculum import CurriculumCallback, base_values, check_values, values_at
from pidog_sim.env import PiDogEnv
from pidog_sim.vec_env import PiDogVecEnv

ENV = {"command_mode": "sample", "episode_seconds": 1.0}
STAGES = [
    {"from_timesteps": 100, "ramp_timesteps": 100, "env": {"reward": {"foot_slip": 8.0}}},
    {
        "from_timesteps": 150,
        "env": {"randomization": {"servo_strength": [0.7, 1.3], "latency_steps": [0, 3]}},
    },
]


@pytest.fixture(scope="module")
def base() -> dict:
    return base_values(ENV)


def test_stages_apply_at_their_steps_and_ramps_move_linearly(base: dict) -> None:
    def at(t: int) -> tuple:
        v = values_at(STAGES, base, t)
        return (
            v["reward"]["foot_slip"],
            v["randomization"]["servo_strength"],
            v["randomization"]["latency_steps"],
        )

    assert at(0) == at(100) == (0.0, (0.8, 1.2), (0, 2))  # a ramp starts from the value before it
    assert at(125) == (2.0, (0.8, 1.2), (0, 2))
    assert at(150) == (4.0, (0.7, 1.3), (0, 3))  # a stage without a ramp applies at once
    assert at(200) == at(10**9) == (8.0, (0.7, 1.3), (0, 3))
    untouched = values_at(STAGES, base, 10**9)
    assert untouched["reward"]["track_vx"] == base["reward"]["track_vx"]
    assert untouched["command_ranges"] == base["command_ranges"]


def test_a_later_stage_ramps_from_where_the_earlier_one_left() -> None:
    base = {"reward": {"foot_slip": 0.0}}
    stages = [
        {"from_timesteps": 0, "env": {"reward": {"foot_slip": 4.0}}},
        {"from_timesteps": 100, "ramp_timesteps": 100, "env": {"reward": {"foot_slip": 2.0}}},
    ]
    assert [values_at(stages, base, t)["reward"]["foot_slip"] for t in (0, 150, 300)] == [4.0, 3.0, 2.0]


class Watch(BaseCallback):
    """What the training env's task holds when each rollout starts (after the curriculum's turn)."""

    def __init__(self, venv: PiDogVecEnv) -> None:
        super().__init__()
        self.venv = venv
        self.seen: list[tuple[int, float, tuple]] = []

    def _on_rollout_start(self) -> None:
        cfg = self.venv.task.cfg
        self.seen.append(
            (self.model.num_timesteps, cfg["reward"]["foot_slip"], cfg["randomization"]["servo_strength"])
        )

    def _on_step(self) -> bool:
        return True


def test_ppo_trains_under_the_schedule_and_a_resumed_run_catches_up_at_once(base: dict) -> None:
    venv = PiDogVecEnv(2, physics_threads=1, **ENV)
    model = PPO("MlpPolicy", venv, n_steps=25, batch_size=50, n_epochs=1, seed=0, device="cpu")
    watch = Watch(venv)
    model.learn(250, callback=[CurriculumCallback(STAGES, base), watch])
    assert watch.seen == [
        (0, 0.0, (0.8, 1.2)),
        (50, 0.0, (0.8, 1.2)),
        (100, 0.0, (0.8, 1.2)),
        (150, 4.0, (0.7, 1.3)),
        (200, 8.0, (0.7, 1.3)),
    ]
    assert venv.reward_term_means()["foot_slip"] < 0.0  # the term is paid, not only configured
    venv.close()

    # A new process resuming at 125 steps builds the env from the base task: the schedule's
    # values are applied before the first rollout.
    fresh = PiDogVecEnv(2, physics_threads=1, **ENV)
    model.set_env(fresh)
    model.num_timesteps = 125
    watch = Watch(fresh)
    model.learn(50, callback=[CurriculumCallback(STAGES, base), watch], reset_num_timesteps=False)
    assert watch.seen[0] == (125, 2.0, (0.8, 1.2))
    fresh.close()


@pytest.mark.parametrize(
    ("stages", "named"),
    [
        ({"from_timesteps": 0}, "option 'curriculum' must be a list"),
        ([{"env": {"reward": {"foot_slip": 1.0}}}], "curriculum[0].from_timesteps' is missing"),
        ([{"from_timesteps": -5, "env": {"reward": {"foot_slip": 1.0}}}], "curriculum[0].from_timesteps"),
        (
            [{"from_timesteps": 0, "ramp_timesteps": 1.5, "env": {"reward": {}}}],
            "curriculum[0].ramp_timesteps",
        ),
        ([{"from_timesteps": 0, "env": {}}], "curriculum[0].env' must be a non-empty mapping"),
        ([{"from_timesteps": 0, "until": 5, "env": {"reward": {"alive": 1.0}}}], "unknown keys ['until']"),
        ([{"from_timesteps": 0, "env": {"episode_seconds": 4.0}}], "curriculum[0].env.episode_seconds"),
        (
            [{"from_timesteps": 0, "env": {"reward": {"foot_slip": "lots"}}}],
            "curriculum[0].env.reward.foot_slip",
        ),
        ([{"from_timesteps": 0, "env": {"reward": 3.0}}], "curriculum[0].env.reward' must be a mapping"),
        (
            [
                {"from_timesteps": 10, "env": {"reward": {"alive": 1.0}}},
                {"from_timesteps": 5, "env": {"reward": {"alive": 2.0}}},
            ],
            "curriculum[1].from_timesteps",
        ),
    ],
)
def test_a_malformed_stage_is_refused_by_name(stages: object, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config("default", {"curriculum": stages})
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"reward": {"foot_slipp": 1.0}}, "foot_slipp"),
        ({"command_ranges": {"wz": [-3.0, 3.0]}}, "command_ranges['wz']"),
        ({"reward": {"track_window_s": 1.0}}, "reward.track_window_s"),
    ],
)
def test_a_stage_value_the_simulator_refuses_is_named_with_its_stage(env: dict, named: str) -> None:
    stages = [{"from_timesteps": 0, "env": {"reward": {"alive": 1.0}}}, {"from_timesteps": 10, "env": env}]
    env = PiDogEnv(**ENV)
    with pytest.raises(ConfigError) as info:
        check_values(stages, env.task)
    env.close()
    assert "curriculum[1].env" in str(info.value) and named in str(info.value)


def test_set_reaches_the_curriculum_as_json() -> None:
    overrides = parse_assignments(
        ['curriculum=[{"from_timesteps": 1000, "env": {"randomization": {"servo_strength": [0.7, 1.3]}}}]']
    )
    config = resolve_config("default", overrides)
    assert config["curriculum"][0]["env"]["randomization"]["servo_strength"] == [0.7, 1.3]
