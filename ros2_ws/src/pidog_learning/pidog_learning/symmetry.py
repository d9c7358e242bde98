"""Left/right mirror symmetry of the actor, as a loss (Yu, Turk & Liu 2018, "Learning
symmetric and low-energy locomotion").

PiDog is symmetric about its sagittal plane, and so is its task: a right turn is a mirrored left
turn. PPO does not know that; its exploration noise and finite batches let the two sides drift
apart (measured: turning in place at -0.6 rad/s reached 0.52 rad/s while +0.6 reached 0.79 with
the same policy). The term ``MSE(pi(mirror(o)), mirror(pi(o)))`` on PPO's own minibatch asks
the actor's mean action to commute with the reflection (``pidog_description.spec`` defines it),
so what PPO learns on one side also holds on the other.
"""

from __future__ import annotations

import torch

from pidog_description.spec import ACTION_MIRROR_INDEX, ObservationLayout

from .networks import PiDogPolicy, state_only_batch

_ACTION_INDEX = torch.as_tensor(ACTION_MIRROR_INDEX)


def mirror_states(states: torch.Tensor, layout: ObservationLayout) -> torch.Tensor:
    """Deployable observations (N, layout.dim) reflected left/right."""
    index = torch.as_tensor(layout.mirror_index, device=states.device)
    return states[:, index] * torch.as_tensor(layout.mirror_sign, dtype=states.dtype, device=states.device)


def symmetry_loss(policy: PiDogPolicy, observations: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the action for the mirrored observation and the mirrored
    action, on the actor's mean (the deterministic action the ONNX exports). Privileged critic
    columns, if any, are dropped: the actor never reads them."""
    states = observations[:, : policy.layout.dim]
    actions = policy.mean_actions(state_only_batch(policy, states))
    mirrored = policy.mean_actions(state_only_batch(policy, mirror_states(states, policy.layout)))
    return torch.mean((mirrored - actions[:, _ACTION_INDEX]) ** 2)
