"""learning_node as its own process over DDS: status on /learning/status, policies announced
(latched) on /learning/policy, invalid parameters refused at start by name."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from std_msgs.msg import String

from pidog_control.policy_runtime import OnnxPolicy
from pidog_description.topics import LATCHED_QOS, LEARNING_POLICY_TOPIC, LEARNING_STATUS_TOPIC

NODE = "pidog_learning.learning_node"
LATCHED = LATCHED_QOS

pytestmark = pytest.mark.ros


def test_node_trains_reports_progress_and_announces_policies(spawn_node, ros_probe, tmp_path: Path) -> None:
    statuses: list[dict] = []
    policies: list[str] = []
    ros_probe.node.create_subscription(
        String, LEARNING_STATUS_TOPIC, lambda m: statuses.append(json.loads(m.data)), 50
    )
    ros_probe.node.create_subscription(
        String, LEARNING_POLICY_TOPIC, lambda m: policies.append(m.data), LATCHED
    )
    node = spawn_node(
        NODE,
        {
            "config": "tiny",
            "output_dir": str(tmp_path),
            "experiment_name": "node",
            "total_rl_timesteps": 128,
            "visualize_freq": 0,
            "ppo.n_steps": 64,
            # A list of stages is no parameter type: it comes in through `set`, as JSON.
            "set": ['curriculum=[{"from_timesteps": 64, "env": {"reward": {"foot_slip": 3.0}}}]'],
        },  # fmt: skip
    )
    done = ros_probe.spin_until(
        lambda: any(s["phase"] in ("done", "error") for s in statuses) or not node.alive(), timeout=150
    )
    assert done, f"no final status; got phases {[s['phase'] for s in statuses]}\n{node.log()}"
    assert statuses[-1]["phase"] == "done" or any(s["phase"] == "done" for s in statuses), node.log()

    phases = [s["phase"] for s in statuses]
    for phase in ("demos", "bc", "ppo", "evaluating", "done"):
        assert phase in phases, phases
    ppo = [s for s in statuses if s["phase"] == "ppo"]
    assert max(s["timesteps"] for s in ppo) >= 128
    assert any(s.get("reward") is not None for s in ppo)
    assert any(s.get("eval_forward_speed_mps") is not None for s in ppo)
    assert any("curriculum stage 1 of 1 from 64 steps" in s.get("message", "") for s in ppo), ppo

    # Each export (after BC, at each evaluation, the final one) was announced; the newest is policy.onnx.
    ros_probe.spin_until(lambda: policies and policies[-1].endswith("/node/policy.onnx"), timeout=10)
    assert policies[-1] == str((tmp_path / "node" / "policy.onnx").resolve())
    assert all(Path(p).is_absolute() and p.endswith(".onnx") and Path(p).is_file() for p in policies)
    OnnxPolicy(policies[-1])

    # A late subscriber (a policy_node started now) still gets the newest policy: latched.
    late: list[str] = []
    ros_probe.node.create_subscription(String, LEARNING_POLICY_TOPIC, lambda m: late.append(m.data), LATCHED)
    assert ros_probe.spin_until(lambda: bool(late), timeout=10), "the policy topic is not latched"
    assert late == [policies[-1]]
    assert node.alive(), "the node keeps serving the latched policy after training"


@pytest.mark.parametrize(
    ("param", "value"),
    [("n_envs", 0), ("total_bc_epochs", -2), ("ppo.n_steps", 1), ("seed", "abc"), ("config", "huge")],
)
def test_invalid_parameters_are_refused_at_start(
    spawn_node, tmp_path: Path, param: str, value: object
) -> None:
    assert_refused_at_start(spawn_node, tmp_path, param, value, f"'{param}'")


def assert_refused_at_start(spawn_node, tmp_path: Path, param: str, value: object, named: str) -> None:
    """The node exits with status 2 naming ``named``, having written nothing."""
    out = tmp_path / "outputs"
    node = spawn_node(NODE, {"config": "tiny", "output_dir": str(out), param: value})
    deadline = time.monotonic() + 30
    while node.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not node.alive(), f"node accepted {param}={value!r}:\n{node.log()}"
    assert node.proc.returncode == 2
    assert named in node.log()
    assert not out.exists(), "a refused node must not start training"


@pytest.mark.parametrize(
    ("param", "value", "named"),
    [
        ("set", ["ppo.n_stepz=3"], "ppo.n_stepz"),
        ("set", ["ppo.n_steps=1"], "ppo.n_steps"),
        ("config_file", "missing.yaml", "missing.yaml"),
        (
            "set",
            ['curriculum=[{"from_timesteps": 0, "env": {"episode_seconds": 1.0}}]'],
            "curriculum[0].env.episode_seconds",
        ),
    ],
)
def test_set_and_config_file_are_checked_at_start(
    spawn_node, tmp_path: Path, param: str, value: object, named: str
) -> None:
    """The node takes pidog-train's --set (string array) and --config FILE, with the same checks."""
    if param == "config_file":
        value = str(tmp_path / str(value))
    assert_refused_at_start(spawn_node, tmp_path, param, value, named)


def test_resume_keeps_what_the_run_saved_unless_this_launch_sets_it(
    spawn_node, ros_probe, tmp_path: Path
) -> None:
    from learning_helpers import checkpoint_timesteps, run_train

    stage = {"from_timesteps": 128, "env": {"reward": {"foot_slip": 3.0}}}
    code, _out, err = run_train("--config", "tiny", "--output-dir", str(tmp_path), "--experiment-name", "exp",
                                "--set", "visualize_freq=0", "--set", "progress_bar=true",
                                "--set", f"curriculum=[{json.dumps(stage)}]")  # fmt: skip
    assert code == 0, err
    exp = tmp_path / "exp"
    eval_before = json.loads((exp / "config.json").read_text())["eval"]
    assert eval_before["final_episodes"] != 2 and eval_before["seconds"] != 10.0  # the tiny preset's
    statuses: list[dict] = []
    ros_probe.node.create_subscription(
        String, LEARNING_STATUS_TOPIC, lambda m: statuses.append(json.loads(m.data)), 50
    )
    # Budgets set here; the curriculum, the preset and the rest are the saved run's, not the
    # node's defaults (`config` stays "default": a 2M-step budget and no curriculum). One option
    # of a group set here changes that option only: the run's other `eval` options stay the tiny
    # preset's (10 s episodes and 250,000-step intervals if the group came from this launch).
    node = spawn_node(NODE, {"resume": str(exp), "total_rl_timesteps": 384, "eval.final_episodes": 2})
    done = ros_probe.spin_until(
        lambda: any(s["phase"] in ("done", "error") for s in statuses) or not node.alive(), timeout=150
    )
    assert done and any(s["phase"] == "done" for s in statuses), node.log()
    saved = json.loads((exp / "config.json").read_text())
    assert saved["curriculum"] == [stage] and saved["total_rl_timesteps"] == 384
    assert saved["progress_bar"] is False  # the node's own default: its log is no terminal
    assert saved["eval"]["final_episodes"] == 2
    assert {k: v for k, v in saved["eval"].items() if k != "final_episodes"} == {
        k: v for k, v in eval_before.items() if k != "final_episodes"
    }
    assert checkpoint_timesteps(exp / "checkpoints" / "ppo_final.zip") >= 384
    # Said once, at the resumed segment's first step, maybe before this probe's subscription
    # matched: read from the node's log, where every status message also goes.
    assert "curriculum stage 1 of 1 from 256 steps" in node.log()
