"""Shared helpers for benchmarks: machine/version header and atomic result files."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "benchmarks"
SHIPPED_POLICY = REPO / "models" / "policies" / "pidog_walk.onnx"

# --imu-orientation: what the benchmarks that offer it pass as sim config "imu_orientation", and
# how their reports describe the robot's filter.
IMU_FILTER = "filter"
FILTER_TITLE = ", observing hw_node's orientation filter"
FILTER_OBSERVATION = (
    "the orientation `hw_node` publishes (its complementary filter at 100 Hz over the simulated "
    "gyro and accelerometer, sim config `imu_orientation: filter`) instead of the truth with white noise "
    "that training sees"
)


def add_imu_orientation_argument(parser: argparse.ArgumentParser) -> None:
    """``--imu-orientation``: training's noisy truth (the sim default) or hw_node's filter."""
    from pidog_sim.batch import IMU_ORIENTATIONS
    from pidog_sim.config import DEFAULT_SIM_CONFIG

    parser.add_argument(
        "--imu-orientation",
        choices=IMU_ORIENTATIONS,
        default=DEFAULT_SIM_CONFIG["imu_orientation"],
        help=f"the orientation the controllers observe ('{IMU_FILTER}': hw_node's, as on the robot)",
    )


def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository when it lies inside it (how reports name files)."""
    path = Path(path).resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def machine_summary() -> str:
    versions = []
    for pkg in ("mujoco", "torch", "stable-baselines3", "gymnasium", "onnxruntime", "numpy", "ros-rclpy"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; " + ", ".join(versions)


def add_results_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--results-dir``: where a benchmark that judges a given ``--policy`` writes its page."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="folder for the page (and its figure); default docs/benchmarks, whose pages make "
        "docs/BENCHMARKS.md: give another to judge a candidate without replacing the shipped policy's page",
    )


def figure_link(results_dir: Path, filename: str) -> str:
    """How a page links a figure written beside it: pages in docs/benchmarks are read inside
    docs/BENCHMARKS.md, so they link through benchmarks/; a page elsewhere links its neighbour."""
    return f"benchmarks/{filename}" if Path(results_dir).resolve() == RESULTS_DIR.resolve() else filename


def write_result(name: str, markdown: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Write <results_dir>/<name>.md atomically (default docs/benchmarks)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.md"
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(markdown)
    os.replace(tmp, path)
    return path
