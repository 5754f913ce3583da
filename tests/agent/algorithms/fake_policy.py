"""A tiny torch policy implementing ``TrainablePolicy`` for algorithm tests (CPU, milliseconds).

Vocabulary of 16 ids: 0 = padding, 1 = image placeholder, the rest text. Each trajectory carries
one 4x4 RGB image, cut into 4 patches of 2x2x3 values; the k-th image token of a row receives the
projection of patch k. ``forward`` takes a :class:`~mapo_agent.types.ForwardRequest`: replacement
``images`` (one per row) are patchified instead of the row's own; a ``patch_mask`` masks each patch
of a row's image with its probability (one seeded draw per image, as the real policy), filling black
(0) or the image mean, so the masked view really changes the log-probs; ``hidden_states`` and
``log_distributions`` are returned on request. Other fields raise
:class:`~mapo_agent.types.UnsupportedRequest`. A causal running mean of the token embeddings gives
every position a view of everything before it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mapo_agent.types import ForwardOutput, ForwardRequest, TrainBatch, Trajectory

VOCAB = 16
IMAGE_TOKEN = 1
NUM_PATCHES = 4
PATCH_DIM = 12


def image_patches(image: np.ndarray) -> torch.Tensor:
    """(NUM_PATCHES, PATCH_DIM) float patches of a 4x4x3 uint8 image."""
    arr = torch.as_tensor(image, dtype=torch.float32) / 255.0  # (4, 4, 3)
    blocks = arr.reshape(2, 2, 2, 2, 3).permute(0, 2, 1, 3, 4)  # (2, 2, 2, 2, 3) grid-major
    return blocks.reshape(NUM_PATCHES, PATCH_DIM)


class FakePolicy(nn.Module):
    """Embedding + image projection + causal mean + MLP head; records how ``forward`` was called."""

    def __init__(self, hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(VOCAB, hidden)
        self.image_proj = nn.Linear(PATCH_DIM, hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, VOCAB)
        nn.init.normal_(self.image_proj.weight, std=2.0)  # images matter enough for a visible masked-view KL
        self.calls: list[dict] = []

    def collate(self, trajectories: list[Trajectory]) -> TrainBatch:
        width = max(len(t.input_ids) for t in trajectories)
        rows = len(trajectories)
        input_ids = torch.zeros(rows, width, dtype=torch.long)
        attention = torch.zeros(rows, width, dtype=torch.long)
        loss_mask = torch.zeros(rows, width)
        old_logprobs = torch.zeros(rows, width)
        for i, t in enumerate(trajectories):
            n = len(t.input_ids)
            input_ids[i, :n] = torch.tensor(t.input_ids)
            attention[i, :n] = 1
            loss_mask[i, :n] = torch.tensor(t.loss_mask, dtype=torch.float32)
            old_logprobs[i, :n] = torch.tensor(t.old_logprobs, dtype=torch.float32)
        return TrainBatch(
            input_ids=input_ids,
            attention_mask=attention,
            loss_mask=loss_mask,
            old_logprobs=old_logprobs,
            group_ids=torch.tensor([t.group_id for t in trajectories], dtype=torch.long),
            model_inputs={"pixel_values": torch.stack([image_patches(t.images[0]) for t in trajectories])},
            trajectories=list(trajectories),
        )

    def forward(self, batch: TrainBatch, request: ForwardRequest | None = None) -> ForwardOutput:
        request = request or ForwardRequest()
        request.unsupported(self, "images", "patch_mask", "hidden_states", "log_distributions")
        patch_mask = request.patch_mask
        self.calls.append(
            {
                "request": request,
                "patch_mask": patch_mask,
                "images": request.images,
                "output_hidden_states": request.hidden_states,
                "grad_enabled": torch.is_grad_enabled(),
                "rows": int(batch.input_ids.shape[0]),
            }
        )
        patches = batch.model_inputs["pixel_values"]  # (B, P, F)
        if request.images is not None:
            assert len(request.images) == patches.shape[0], "one replacement image per row here"
            patches = torch.stack([image_patches(img) for img in request.images]).to(patches)
        if patch_mask is not None:
            seeds = patch_mask.image_seeds  # one image per row here
            assert len(seeds) == patches.shape[0], "one seed (or None) per image"
            drop = torch.stack(
                [
                    torch.rand(NUM_PATCHES, generator=torch.Generator().manual_seed(s)) < patch_mask.ratio
                    if s is not None
                    else torch.zeros(NUM_PATCHES, dtype=torch.bool)
                    for s in seeds
                ]
            )  # (B, P)
            fill = patches.mean(dim=1, keepdim=True) if patch_mask.fill == "mean" else torch.zeros_like(patches)
            patches = torch.where(drop.unsqueeze(-1), fill, patches)
        ids = batch.input_ids  # (B, T)
        image_mask = ids == IMAGE_TOKEN
        x = self.embed(ids)  # (B, T, D)
        patch_index = (torch.cumsum(image_mask.long(), dim=1) - 1).clamp(0, NUM_PATCHES - 1)  # (B, T)
        image_emb = torch.gather(self.image_proj(patches), 1, patch_index.unsqueeze(-1).expand_as(x))
        x = torch.where(image_mask.unsqueeze(-1), image_emb, x)
        steps = torch.arange(1, ids.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
        hidden = torch.tanh(self.mix(torch.cumsum(x, dim=1) / steps)) + x  # (B, T, D)
        logp_all = torch.log_softmax(self.head(hidden), dim=-1)[:, :-1]  # (B, T-1, V) predicts t+1
        token_logprobs = torch.gather(logp_all, -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        real = batch.attention_mask[:, 1:].to(x.dtype)
        zero = torch.zeros(ids.shape[0], 1)
        return ForwardOutput(
            logprobs=torch.cat([zero, token_logprobs * real], dim=1),
            entropy=torch.cat([zero, entropy * real], dim=1),
            hidden_states=hidden if request.hidden_states else None,
            log_distributions=logp_all[batch.loss_mask[:, 1:] > 0] if request.log_distributions else None,
            image_token_mask=image_mask,
        )


def make_trajectory(
    rng: np.random.Generator, group_id: int, correct: bool, alignment: list[float], gen_tokens: int = 5
) -> Trajectory:
    """Prompt (3 text + 4 image tokens), a generated turn, a 2-token tool reply, a generated answer."""
    prompt = [int(x) for x in rng.integers(2, VOCAB, 3)] + [IMAGE_TOKEN] * NUM_PATCHES
    turn = [int(x) for x in rng.integers(2, VOCAB, gen_tokens)]
    tool = [int(x) for x in rng.integers(2, VOCAB, 2)]
    answer = [int(x) for x in rng.integers(2, VOCAB, 2)]
    ids = prompt + turn + tool + answer
    mask = [0] * len(prompt) + [1] * len(turn) + [0] * len(tool) + [1] * len(answer)
    return Trajectory(
        input_ids=ids,
        loss_mask=mask,
        old_logprobs=[0.0] * len(ids),
        images=[rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)],
        group_id=group_id,
        sample_index=group_id,
        reward=float(correct),
        correct=correct,
        alignment_scores=list(alignment),
        num_tool_calls=len(alignment),
        num_turns=2,
    )


def make_batch_trajectories(policy: FakePolicy, outcomes: list[list[bool]], seed: int = 0) -> list[Trajectory]:
    """One group per entry of ``outcomes``; old log-probs are the policy's own (ratio 1 at step 0)."""
    rng = np.random.default_rng(seed)
    trajectories = [
        make_trajectory(rng, gid, ok, [float(x) for x in rng.uniform(0, 1, int(rng.integers(0, 3)))], 3 + i)
        for gid, group in enumerate(outcomes)
        for i, ok in enumerate(group)
    ]
    with torch.no_grad():
        logprobs = policy.forward(policy.collate(trajectories)).logprobs
    policy.calls.clear()
    for row, t in enumerate(trajectories):
        t.old_logprobs = [lp * m for lp, m in zip(logprobs[row, : len(t.input_ids)].tolist(), t.loss_mask)]
    return trajectories
