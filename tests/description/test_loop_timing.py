"""The loop monitor (hw_node, policy_node) tells a loop that was short of CPU from one blocked in a call, with the
kernel's own per-thread accounting (no mock of the clock or of /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pidog_description.loop_timing import LoopMonitor, Stall, ThreadSchedstat

needs_schedstat = pytest.mark.skipif(ThreadSchedstat()() is None, reason="kernel keeps no schedstat")


def test_on_time_ticks_are_no_stall_and_the_longest_gap_is_kept() -> None:
    monitor = LoopMonitor(stall_after_s=0.1)
    assert monitor.tick(10.0) is None  # the first tick has nothing to compare with
    assert monitor.tick(10.02) is None
    assert monitor.tick(10.06) is None
    assert monitor.stalls == 0
    assert monitor.longest_gap_s == pytest.approx(0.04)
    assert monitor.status() == {
        "loop_stalls": 0,
        "longest_loop_gap_s": 0.04,
        "last_loop_stall": "",
        "longest_loop_stall": "",
    }


def test_the_longest_stall_is_kept_beside_the_last() -> None:
    monitor = LoopMonitor(stall_after_s=0.1, read=lambda: None)
    for now in (0.0, 2.0, 2.3):
        monitor.tick(now)
    status = monitor.status()
    assert status["loop_stalls"] == 2
    assert "held up 2.00 s" in str(status["longest_loop_stall"])
    assert "held up 0.30 s" in str(status["last_loop_stall"])


def test_without_scheduler_statistics_a_stall_says_so() -> None:
    monitor = LoopMonitor(stall_after_s=0.1, read=lambda: None)
    monitor.tick(0.0)
    stall = monitor.tick(2.0)
    assert stall == Stall(2.0, None, None)
    assert stall.blocked_s is None
    assert "held up 2.00 s" in stall.describe() and "no scheduler statistics" in stall.describe()
    assert monitor.status()["loop_stalls"] == 1


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_a_threshold_that_is_not_positive_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="stall_after_s"):
        LoopMonitor(stall_after_s=bad)


@needs_schedstat
def test_a_loop_asleep_in_a_call_reads_blocked() -> None:
    monitor = LoopMonitor(stall_after_s=0.1)
    monitor.tick(time.monotonic())
    time.sleep(0.4)  # a blocking call: a publish waiting on a dead reader, a stuck bus
    stall = monitor.tick(time.monotonic())
    assert stall is not None
    assert stall.blocked_s is not None and stall.blocked_s >= 0.3, stall.describe()
    assert stall.running_s is not None and stall.running_s < stall.blocked_s, stall.describe()


@needs_schedstat
def test_a_loop_sharing_its_cpu_with_a_busy_process_reads_waiting() -> None:
    """Pinned to one CPU beside a process that never sleeps, the loop's busy 0.6 s spends a
    measurable share runnable but not running (CFS shares the CPU; more load only adds)."""
    cpu = min(os.sched_getaffinity(0))
    burner = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpu})
        time.sleep(0.3)  # the burner is up and pinned
        monitor = LoopMonitor(stall_after_s=0.1)
        monitor.tick(time.monotonic())
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            pass
        stall = monitor.tick(time.monotonic())
    finally:
        os.sched_setaffinity(0, before)
        burner.kill()
        burner.wait()
    assert stall is not None
    assert stall.waiting_s is not None and stall.waiting_s >= 0.1, stall.describe()
    assert stall.running_s is not None and stall.running_s >= 0.1, stall.describe()
    assert "waiting for a CPU" in stall.describe()
