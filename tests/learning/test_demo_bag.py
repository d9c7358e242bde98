"""pidog-train --demo-bag: a recorded rosbag2 becomes the demonstrations BC and PPO learn from."""

from __future__ import annotations

import sys
from pathlib import Path

from learning_helpers import run_train

from pidog_learning.demonstrations import Demonstrations

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "teleop"))
from synthetic_bags import make_recording, write_bag  # noqa: E402


def test_pipeline_learns_from_a_recorded_bag(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "teleop_bag", [make_recording(seed=1), make_recording(seed=2)], storage="mcap")
    code, out, err = run_train(
        "--config",
        "tiny",
        "--output-dir",
        str(tmp_path / "out"),
        "--experiment-name",
        "bag",
        "--demo-bag",
        str(bag),
        "--total-rl-timesteps",
        "0",
        "--visualize-freq",
        "0",
    )
    assert code == 0, err
    exp = tmp_path / "out" / "bag"
    demos = Demonstrations.load(exp / "demonstrations.npz")
    # Two 4 s recordings at 50 Hz: about 400 samples in two episodes, from the bag, not the sim.
    assert demos.n_episodes == 2 and 350 <= len(demos) <= 400
    report = (exp / "demo_import_report.txt").read_text()
    assert "/joint_commands" in report  # what was used is reported
    assert (exp / "bc_pretrained_policy.pth").is_file() and (exp / "policy.onnx").is_file()
