"""Why a periodic loop ran late: waiting for a CPU, running, or blocked.

A safety loop that is held up (the command watchdog, the fall check) acts late, and the remedy
depends on the cause: a Pi that is short of CPU (another process, thermal throttling) needs
less load or a higher priority, while a loop blocked in a call (a publish, the bus, a disk
write) is a defect of the node. The kernel keeps, per thread, the time spent on a CPU and the
time spent runnable but waiting for one (``/proc/thread-self/schedstat``, Linux's
CONFIG_SCHED_INFO, which Raspberry Pi OS and Ubuntu enable); whatever is left of a late tick's
gap was spent blocked (or idle in the executor's wait, one period's worth when on time).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCHEDSTAT = Path("/proc/thread-self/schedstat")


class ThreadSchedstat:
    """The calling thread's (time on a CPU, time waiting for one), seconds; None where the
    kernel does not keep them.

    One descriptor, opened on the first call and re-read with pread: ~1.5 us a read against
    ~30 us for open/read/close, and a 50 Hz loop reads it every tick. Opened by the thread that
    calls it, since /proc/thread-self names the opening thread.
    """

    def __init__(self, path: Path = SCHEDSTAT) -> None:
        self.path = path
        self._fd: int | None = None
        self._unavailable = False

    def __call__(self) -> tuple[float, float] | None:
        if self._unavailable:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            fields = os.pread(self._fd, 128, 0).split()
            return int(fields[0]) * 1e-9, int(fields[1]) * 1e-9
        except (OSError, IndexError, ValueError):
            self._unavailable = True  # no such file here: do not try again every tick
            return None

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


@dataclass(frozen=True)
class Stall:
    """One late tick: its gap since the previous one, and how the thread spent it."""

    gap_s: float
    running_s: float | None  # on a CPU; None: the kernel does not say
    waiting_s: float | None  # runnable, waiting for a CPU

    @property
    def blocked_s(self) -> float | None:
        """Neither running nor waiting for a CPU: asleep in a call (or the executor's wait)."""
        if self.running_s is None or self.waiting_s is None:
            return None
        return max(0.0, self.gap_s - self.running_s - self.waiting_s)

    def describe(self) -> str:
        if self.running_s is None or self.waiting_s is None:
            return f"held up {self.gap_s:.2f} s (the kernel keeps no scheduler statistics here)"
        return (
            f"held up {self.gap_s:.2f} s: waiting for a CPU {self.waiting_s:.2f} s, "
            f"running {self.running_s:.2f} s, blocked {self.blocked_s:.2f} s"
        )


class LoopMonitor:
    """Call ``tick(now)`` at the start of each loop iteration; it returns a Stall when the
    gap since the previous tick exceeds ``stall_after_s``, and keeps counts for diagnostics."""

    def __init__(
        self,
        stall_after_s: float,
        read: Callable[[], tuple[float, float] | None] | None = None,
    ) -> None:
        if not stall_after_s > 0:
            raise ValueError(f"stall_after_s must be > 0, got {stall_after_s}")
        self.stall_after_s = stall_after_s
        self._read = read if read is not None else ThreadSchedstat()
        self._last: tuple[float, tuple[float, float] | None] | None = None
        self.stalls = 0
        self.longest_gap_s = 0.0
        self.last_stall: Stall | None = None
        self.longest_stall: Stall | None = None

    def tick(self, now: float) -> Stall | None:
        sched = self._read()
        previous, self._last = self._last, (now, sched)
        if previous is None:
            return None
        gap = now - previous[0]
        self.longest_gap_s = max(self.longest_gap_s, gap)
        if gap <= self.stall_after_s:
            return None
        before = previous[1]
        if sched is None or before is None:
            stall = Stall(gap, None, None)
        else:
            stall = Stall(gap, sched[0] - before[0], sched[1] - before[1])
        self.stalls += 1
        self.last_stall = stall
        if self.longest_stall is None or stall.gap_s > self.longest_stall.gap_s:
            self.longest_stall = stall
        return stall

    def status(self) -> dict[str, float | int | str]:
        return {
            "loop_stalls": self.stalls,
            "longest_loop_gap_s": round(self.longest_gap_s, 3),
            "last_loop_stall": self.last_stall.describe() if self.last_stall else "",
            "longest_loop_stall": self.longest_stall.describe() if self.longest_stall else "",
        }
