"""Ray stays optional: the single-machine path never imports it, and bad sweep/cluster input is
refused by name before anything runs (no cluster needed for these)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pidog_learning.ray_cluster import ClusterError, NodeInfo
from pidog_learning.ray_vec_env import plan_workers
from pidog_learning.sweep import load_sweep, main

RAY_BLOCKED = """
import sys
sys.modules["ray"] = None  # `import ray` now fails, as on a machine without requirements/ray.txt
import pidog_learning.pipeline, pidog_learning.train_cli
from pidog_learning.config import resolve_config
from pidog_learning.ppo_finetune import make_vec_env

env = make_vec_env(resolve_config("tiny"), seed=0)  # the PPO simulators of make demo / pidog-train
env.reset()
env.step(env.action_space.sample()[None].repeat(env.num_envs, 0))
env.close()
assert sys.modules["ray"] is None and not [m for m in sys.modules if m.startswith("ray.")]
try:
    pidog_learning.train_cli.main(["--config", "tiny", "--ray-address", "127.0.0.1:1"])
except SystemExit as exc:
    print("exit", exc.code)
"""


def test_single_machine_path_never_imports_ray() -> None:
    run = subprocess.run([sys.executable, "-c", RAY_BLOCKED], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "exit 2" in run.stdout
    # Asking for Ray without it installed says what to install.
    assert "Ray is not installed: pip install -r requirements/ray.txt" in run.stderr


def _sweep_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"preset": "tiny", "grd": {"seed": [1]}}, "unknown key(s) ['grd']"),
        (
            {"preset": "tiny", "grid": {"ppo.n_stepz": [64]}},
            "trial ppo.n_stepz=64_seed42: unknown option 'ppo.n_stepz'",
        ),
        ({"preset": "tiny", "grid": {"learning_rate": [0.001, -1]}}, "option 'learning_rate' must be > 0.0"),
        (
            {"preset": "tiny", "grid": {"learning_rate": 0.001}},
            "grid option 'learning_rate' needs a non-empty list",
        ),
        ({"preset": "tiny", "base": {"seed": 3}}, "'base' sets ['seed']: the sweep sets them per trial"),
        ({"preset": "tiny", "seeds": [1, 1]}, "'seeds' must be a list of distinct integers"),
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"preset": "tiny", "num_cpus": 0}, "'num_cpus' must be an integer >= 1"),
        ({"preset": "tiny", "trials": [{"name": "a"}, {"name": "a"}]}, "share the folder a_seed42"),
        ({"preset": "tiny", "base": {"env": {"forward_speed": 9.0}}}, "option 'env': forward_speed"),
    ],
)
def test_bad_sweep_files_are_refused_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: object, message: str
) -> None:
    path = _sweep_file(tmp_path, data)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert str(path) in err or "sweep trial base_seed42" in err, err  # names the file or the trial
    assert not (tmp_path / "out").exists()  # nothing was created, nothing ran


def test_unreachable_ray_address_is_a_quick_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep_file(tmp_path, {"preset": "tiny"})
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--ray-address", "127.0.0.1:1", "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--ray-address 127.0.0.1:1: no Ray head answers at 127.0.0.1:1" in err
    for bad in ("ray://10.0.0.1:10001", "10.0.0.1"):
        with pytest.raises(SystemExit):
            main([str(path), "--ray-address", bad, "--dry-run"])
        assert f"--ray-address {bad!r}" in capsys.readouterr().err


def test_grid_and_list_expand_into_named_trials_per_seed(tmp_path: Path) -> None:
    path = _sweep_file(
        tmp_path,
        {
            "preset": "tiny",
            "base": {"ppo": {"n_epochs": 1}},
            "grid": {"learning_rate": [0.001, 0.0003]},
            "trials": [{"name": "bcrl"}, {"name": "scratch", "no_bc_init": True}],
            "seeds": [0, 1],
            "num_cpus": 2,
        },
    )
    sweep = load_sweep(path, ["ppo.batch_size=32"], output_dir=str(tmp_path / "out"))
    assert [t.trial_id for t in sweep.trials][:3] == [
        "bcrl,learning_rate=0.001_seed0",
        "bcrl,learning_rate=0.001_seed1",
        "bcrl,learning_rate=0.0003_seed0",
    ]
    assert len(sweep.trials) == 8
    scratch = [t for t in sweep.trials if t.variant.startswith("scratch")][0]
    assert scratch.config["no_bc_init"] is True and scratch.config["learning_rate"] == 0.001
    assert scratch.config["ppo"]["n_epochs"] == 1 and scratch.config["ppo"]["batch_size"] == 32
    # Each trial's physics and updates run on the CPUs it reserved, its folder inside the sweep's.
    assert scratch.config["physics_threads"] == scratch.config["update_threads"] == 2
    assert scratch.folder == (tmp_path / "out" / path.stem / scratch.trial_id).resolve()


def test_a_trial_uses_only_the_cpus_it_reserved_unless_the_sweep_file_says_otherwise(
    tmp_path: Path,
) -> None:
    # The single-machine defaults (0: every core of the machine) would have trials that run
    # side by side on one node each take all of its cores, in the physics and in the updates.
    from pidog_learning.config import DEFAULT_CONFIG

    assert DEFAULT_CONFIG["physics_threads"] == DEFAULT_CONFIG["update_threads"] == 0
    path = _sweep_file(
        tmp_path,
        {
            "preset": "tiny",
            "trials": [{"name": "reserved"}, {"name": "own", "update_threads": 1, "physics_threads": 2}],
            "num_cpus": 3,
        },
    )
    reserved, own = load_sweep(path, output_dir=str(tmp_path / "out")).trials
    assert reserved.config["physics_threads"] == reserved.config["update_threads"] == 3
    assert (own.config["physics_threads"], own.config["update_threads"]) == (2, 1)
    # --num-cpus on the command line sets both as well; --set overrides them in every trial.
    trial = load_sweep(path, output_dir=str(tmp_path / "out"), num_cpus=1).trials[0]
    assert trial.config["physics_threads"] == trial.config["update_threads"] == 1
    overridden = load_sweep(path, ["update_threads=0"], output_dir=str(tmp_path / "out")).trials
    assert [t.config["update_threads"] for t in overridden] == [0, 1]  # the trial's own still wins
    assert [t.config["physics_threads"] for t in overridden] == [3, 2]


def _node(name: str, cpus: float) -> NodeInfo:
    return NodeInfo(node_id=name, ip="127.0.0.1", cpus=cpus, resources={"CPU": cpus}, is_head=name == "head")


def test_simulator_workers_go_to_the_other_nodes_and_share_the_robots() -> None:
    nodes = [_node("head", 8), _node("a", 4), _node("b", 2)]
    plan = plan_workers(nodes, "head", 7, {"workers_per_node": 2})
    assert [(n.node_id, cpus, robots) for n, cpus, robots in plan] == [
        ("a", 2, 2),
        ("a", 2, 2),
        ("b", 1, 2),
        ("b", 1, 1),
    ]
    # The learner's node joins only when asked, or when it is the only one.
    assert {n.node_id for n, *_ in plan_workers(nodes, "head", 8, {"include_learner_node": True})} == {
        "head",
        "a",
        "b",
    }
    assert [n.node_id for n, *_ in plan_workers([_node("head", 2)], "head", 4, {})] == ["head"]
    with pytest.raises(ClusterError, match="n_envs=3 robots cannot fill 4 simulator workers"):
        plan_workers(nodes, "head", 3, {"workers_per_node": 2})
    with pytest.raises(
        ClusterError, match="has 2 CPUs: too few for ray.workers_per_node=1 x ray.cpus_per_worker=3"
    ):
        plan_workers(nodes, "head", 8, {"cpus_per_worker": 3})


def test_the_shipped_study_sweep_is_valid() -> None:
    study = Path(__file__).resolve().parents[2] / "docs" / "sweeps" / "bc_vs_scratch.yaml"
    sweep = load_sweep(study)
    assert [t.trial_id for t in sweep.trials] == [
        f"{arm}_seed{s}" for arm in ("bcrl", "scratch") for s in (0, 1, 2)
    ]
    assert all(t.config["total_rl_timesteps"] == 300_000 for t in sweep.trials)
