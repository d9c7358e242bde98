"""hw_node's judge of how late a command is (pidog_hw.command_age): a clock offset or drift
between sender and robot is not lateness; a queue that delivers old commands is."""

from __future__ import annotations

import numpy as np

from pidog_hw.command_age import CommandLateness

S = 1_000_000_000  # ns


def stream(offset_s: float, seconds: float, rate_hz: float = 50.0, drift: float = 0.0, seed: int = 0):
    """(stamp, arrival) pairs of a sender whose clock is offset_s behind ours and drifts by
    ``drift`` s/s, with 0-3 ms of delivery jitter."""
    rng = np.random.default_rng(seed)
    for t in np.arange(1.0, seconds, 1.0 / rate_hz):
        stamp = (t - offset_s - drift * t) * S
        yield int(stamp), int((t + rng.uniform(0.0, 0.003)) * S)


def test_a_sender_with_an_offset_drifting_clock_is_never_late() -> None:
    judge = CommandLateness()
    # Another machine, 5 s behind, its crystal 100 ppm slow, for an hour.
    worst = max(judge.lateness(s, a) for s, a in stream(5.0, 3600.0, rate_hz=10.0, drift=1e-4))
    assert worst < 0.005


def test_commands_held_in_a_queue_are_late_by_how_long_they_waited() -> None:
    judge = CommandLateness()
    for stamp, arrival in stream(-2.0, 3.0):  # a sender 2 s ahead of us
        assert judge.lateness(stamp, arrival) < 0.005
    # The sender dies; a backlog of its last second of commands is delivered 1.5 s later.
    backlog = [(stamp, arrival + int(1.5 * S)) for stamp, arrival in stream(-2.0, 4.0)][-50:]
    late = [judge.lateness(stamp, arrival) for stamp, arrival in backlog]
    assert min(late) > 1.49 and max(late) < 1.51


def test_unstamped_commands_are_not_judged_and_a_new_source_starts_afresh() -> None:
    judge = CommandLateness()
    assert judge.lateness(0, 10 * S) == 0.0
    judge.lateness(100 * S, 100 * S)
    assert judge.lateness(90 * S, 101 * S) > 10.0  # 10 s behind the fastest so far
    judge.reset()  # re-armed: another sender, 10 s behind us
    assert judge.lateness(90 * S, 101 * S) == 0.0
    assert judge.lateness(91 * S, 102 * S) == 0.0
