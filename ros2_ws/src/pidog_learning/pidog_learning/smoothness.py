"""Spatial smoothness of the actor, as a loss (Mysore et al. 2021, "Regularizing action
policies for smooth control with reinforcement learning", CAPS's spatial term).

A walking policy that answers small differences in what it senses with large differences in
what it does jitters: a stance foot scrubs back and forth where the scripted gait's stays put
(docs/ABLATIONS.md, thirty-fifth session: the policies' stance feet slide 1.5-5x as fast as the
gait's in mid-stance, in every direction). Reward terms on the slip traded it against tracking.
This term acts on the policy instead: ``MSE(pi(o), pi(o + e))``, with ``e`` a small Gaussian
perturbation of what the robot senses and did (each frame's gravity, gyro, joint estimate and
last action, the present's and the history's), scaled by the normaliser's standard deviation of
each value, asks the actor's mean action to change little where its feedback changes little,
on PPO's own minibatch. The command and the gait clock are not perturbed: the action should
follow them (measured on a default run's policy, they are ~90 % of its sensitivity to an
all-input perturbation, and PPO raised its sensitivity to the feedback about 60-fold over BC's).

Measured (docs/ABLATIONS.md, thirty-seventh session): at weights 50 and 200 it held the
feedback sensitivity about 3x and 6x below a default run's, but the stance slip did not follow (0.055-0.064
m/s against 0.064-0.066), so ``ppo.smoothness_loss_weight`` is 0 by default.
"""

from __future__ import annotations

import torch

from pidog_description.spec import FRAME_DIM, ObservationLayout

from .networks import PiDogPolicy, state_only_batch


def feedback_mask(layout: ObservationLayout) -> torch.Tensor:
    """1 for the observation values a perturbation moves (every frame's gravity, gyro, joint
    estimate and last action), 0 for the command and the gait clock."""
    mask = torch.zeros(layout.dim)
    mask[:FRAME_DIM] = 1.0
    mask[layout.past] = 1.0
    return mask


def smoothness_loss(
    policy: PiDogPolicy, observations: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mean squared difference between the actor's mean action for each deployable observation
    and for that observation's feedback (``feedback_mask``) perturbed by ``sigma`` normaliser
    standard deviations per value. Privileged critic columns, if any, are dropped: the actor
    never reads them."""
    layout = policy.layout
    states = observations[:, : layout.dim]
    noise = torch.randn(states.shape, generator=generator, dtype=states.dtype)
    scale = sigma * policy.normalizer.std[: layout.dim] * feedback_mask(layout)
    perturbed = states + scale * noise
    actions = policy.mean_actions(state_only_batch(policy, states))
    nearby = policy.mean_actions(state_only_batch(policy, perturbed))
    return torch.mean((nearby - actions) ** 2)
