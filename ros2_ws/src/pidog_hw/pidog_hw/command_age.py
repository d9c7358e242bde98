"""How late a /joint_commands message arrives, judged by its header stamp.

hw_node's command watchdog counts from the last accepted command. Counted from *arrival*, a
command that sat in a queue (a starved executor, a DDS resend) restarts the watchdog although
its sender may be gone: the robot walks on the sender's old orders. Counted from the *stamp*,
clocks must agree, and the sender may run on another machine with its own clock.

So the age is relative: the smallest (arrival - stamp) seen from the current source is the
delivery baseline (transport delay plus any clock offset, both constant), and a command's
lateness is how much longer than that it took. Two clocks that drift apart (no NTP; quartz clocks are commonly specified at tens of ppm, not measured here)
move the baseline slowly; it may rise by ``drift_per_s`` seconds per second, far less than any
watchdog, so drift never reads as lateness while a stuck queue still does.
"""

from __future__ import annotations

DEFAULT_DRIFT_PER_S = 1e-3  # 1000 ppm: far above a quartz clock's usual specification


class CommandLateness:
    """Lateness of stamped messages from one source, in seconds (0 for an unstamped one)."""

    def __init__(self, drift_per_s: float = DEFAULT_DRIFT_PER_S) -> None:
        self.drift_per_s = drift_per_s
        self._baseline_ns: int | None = None  # smallest arrival - stamp so far
        self._baseline_at_ns = 0  # arrival time it was measured at

    def reset(self) -> None:
        """A new source (or a re-arm): its clock and path are unknown."""
        self._baseline_ns = None

    def lateness(self, stamp_ns: int, arrival_ns: int) -> float:
        """Seconds this message took beyond the fastest delivery seen (the baseline)."""
        if stamp_ns <= 0:  # unstamped: nothing to judge by
            return 0.0
        delay = arrival_ns - stamp_ns
        if self._baseline_ns is not None:
            allowed = self._baseline_ns + self.drift_per_s * (arrival_ns - self._baseline_at_ns)
            if delay > allowed:
                return (delay - allowed) * 1e-9
        self._baseline_ns, self._baseline_at_ns = delay, arrival_ns
        return 0.0
