"""Judging a candidate policy with a benchmark leaves the shipped policy's pages alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks import bench_robustness
from benchmarks.common import RESULTS_DIR, SHIPPED_POLICY


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_robustness_page_goes_to_the_results_dir(tmp_path: Path) -> None:
    shipped_page = RESULTS_DIR / "robustness.md"
    shipped_figure = RESULTS_DIR / "robustness.png"
    before = (_digest(shipped_page), _digest(shipped_figure))

    # A short run of the whole grid (one episode of 3 s per cell), as a user judging a candidate.
    rc = bench_robustness.main(
        ["--policy", str(SHIPPED_POLICY), "--episodes", "1", "--seconds", "3", "--threads", "1"]
        + ["--results-dir", str(tmp_path)]
    )

    assert rc == 0
    page = (tmp_path / "robustness.md").read_text()
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert "![robustness](robustness.png)" in page  # the figure beside the page, not docs' path
    assert "| 0.35 |" in page  # the chart's rows: the model's own servo strength among them
    assert (_digest(shipped_page), _digest(shipped_figure)) == before
