"""LDM-S DDIM sampling (paper eq. 5) from a given starting noise, and majority voting.

Masks live in latent space as one-hot maps scaled to [-1, 1] (background channel 0); the
labels are the per-pixel majority vote over samples (`resolve_votes`; the argmax for one).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DModel

from .noise import check_steps


def mask_to_latent(labels: torch.Tensor, n_classes: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) integer labels -> (B, n, h, w) one-hot in [-1, 1] at latent size.

    Resized with area averaging so a latent pixel holds the class fractions it covers.
    """
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes).permute(0, 3, 1, 2).float()
    if tuple(onehot.shape[-2:]) != tuple(size):
        onehot = torch.nn.functional.interpolate(onehot, size=size, mode="area")
    return onehot * 2.0 - 1.0


@torch.inference_mode()
def ddim_sample(
    ldm_s: UNet2DModel,
    scheduler: DDIMScheduler,
    noise: torch.Tensor,
    z: torch.Tensor | None,
    steps: int,
) -> torch.Tensor:
    """Deterministic DDIM sampling of mask latents conditioned on image latents.

    noise: (B, n, h, w) starting noise at t = T - 1; z: (B, 3, h, w) image latents, or
    None for an unconditional model (LDM-P: the inverse of `invert_to_noise`).
    Returns the (B, n, h, w) sampled mask latent (values near -1 / +1).
    The scheduler's `prediction_type` says whether LDM-S predicts epsilon or x0.
    """
    check_steps(steps, scheduler.config.num_train_timesteps, "sampling_steps")
    scheduler.set_timesteps(steps)
    x = noise
    for t in scheduler.timesteps:
        inp = x if z is None else torch.cat([x, z], dim=1)
        out = ldm_s(inp, t.to(x.device)).sample
        x = scheduler.step(out, int(t), x, eta=0.0).prev_sample
    return x


def vote_counts(sample_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(k, ...) labels of k samples -> (n, ...) fraction of samples voting for each class."""
    k = sample_labels.shape[0]
    votes = np.zeros((n_classes, *sample_labels.shape[1:]), np.float32)
    for c in range(n_classes):
        votes[c] = (sample_labels == c).sum(axis=0)
    return votes / np.float32(k)


def resolve_votes(votes: np.ndarray, mean_scores: np.ndarray, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Labels and agreement from (n, ...) vote fractions.

    Tie rule: among the classes with the most votes (within `tol`), the one with the
    highest mean sampled score wins; if that ties too, the lowest class index.
    Agreement is the winning vote fraction (1 = all samples agree).
    """
    top = votes.max(axis=0)
    candidates = votes >= top - tol
    keyed = np.where(candidates, mean_scores, -np.inf)
    return np.argmax(keyed, axis=0).astype(np.uint8), top.astype(np.float32)


def majority_vote(sample_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel majority vote of k sampled score maps (k, n, ...) -> (labels, agreement)."""
    n = sample_scores.shape[1]
    votes = vote_counts(np.argmax(sample_scores, axis=1), n)
    return resolve_votes(votes, sample_scores.mean(axis=0))
