"""Shared helpers for benchmarks: machine/version header and atomic result files."""

from __future__ import annotations

import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "benchmarks"
SHIPPED_POLICY = REPO / "models" / "policies" / "pidog_walk.onnx"


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


def write_result(name: str, markdown: str) -> Path:
    """Write docs/benchmarks/<name>.md atomically."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    fd, tmp = tempfile.mkstemp(dir=RESULTS_DIR, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(markdown)
    os.replace(tmp, path)
    return path
