"""The training forward's one request object: replaced images on the real policy, merging, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mapo_agent.types import ForwardRequest, PatchMask, UnsupportedRequest
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy


@pytest.fixture(scope="module")
def batch(tiny_policy, two_episodes):
    _, states = two_episodes
    return tiny_policy.collate([tiny_policy.to_trajectory(s) for s in states])


def _images(batch) -> list[np.ndarray]:
    return [img for t in batch.trajectories for img in t.images]


def test_replaced_images_are_teacher_forced_on_the_same_tokens(tiny_policy, batch):
    images = _images(batch)
    inverted = [255 - img for img in images]
    with torch.no_grad():
        plain = tiny_policy.forward(batch)
        same = tiny_policy.forward(batch, ForwardRequest(images=tuple(img.copy() for img in images)))
        other = tiny_policy.forward(batch, ForwardRequest(images=inverted, view_key="inverted"))
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(same.logprobs, plain.logprobs)  # the same pixels: the same pass
    assert (other.logprobs[mask] - plain.logprobs[mask]).abs().max() > 1e-4  # the model sees the new images
    assert torch.equal(other.image_token_mask, plain.image_token_mask)  # ... on the same tokens


def test_replaced_images_must_keep_count_and_size(tiny_policy, batch):
    images = _images(batch)
    with pytest.raises(ConfigError, match="holds 1 image\\(s\\) but the batch has 5"):
        tiny_policy.forward(batch, ForwardRequest(images=images[:1]))
    smaller = [img[: img.shape[0] // 2] for img in images]
    with pytest.raises(ConfigError, match="must keep the original's size"):
        tiny_policy.forward(batch, ForwardRequest(images=smaller))
    with pytest.raises(ConfigError, match="must be a uint8 \\(H, W, 3\\) array"):
        ForwardRequest(images=[images[0].astype(np.float32)])


def test_requests_merge_outputs_and_refuse_two_views():
    mask = PatchMask(0.5, (1,))
    merged = ForwardRequest(hidden_states=True).merge(ForwardRequest(patch_mask=mask, attentions=True))
    assert merged == ForwardRequest(hidden_states=True, patch_mask=mask, attentions=True)
    assert merged.changes_view and not ForwardRequest(hidden_states=True).changes_view
    hinted = ForwardRequest(loss_positions_only=True)
    assert hinted.merge(hinted).loss_positions_only and not hinted.merge(ForwardRequest()).loss_positions_only
    with pytest.raises(ConfigError, match="different patch masks"):
        ForwardRequest(patch_mask=mask).merge(ForwardRequest(patch_mask=PatchMask(0.6, (1,))))
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ConfigError, match="both replace images"):
        ForwardRequest(images=[image]).merge(ForwardRequest(images=[image]))


def test_a_policy_refuses_what_it_cannot_compute():
    policy = FakePolicy()
    with pytest.raises(UnsupportedRequest, match=r"cannot honour ForwardRequest field\(s\) \['attentions'\]"):
        ForwardRequest(attentions=True, loss_positions_only=True).unsupported(policy, "hidden_states")
    ForwardRequest(hidden_states=True, loss_positions_only=True).unsupported(policy, "hidden_states")  # fine
    assert issubclass(UnsupportedRequest, ConfigError)


def test_log_distributions_are_the_whole_next_token_distributions_at_loss_tokens(tiny_policy, batch):
    mask = batch.loss_mask > 0
    with torch.no_grad():
        full = tiny_policy.forward(batch, ForwardRequest(log_distributions=True))
        lean = tiny_policy.forward(batch, ForwardRequest(log_distributions=True, loss_positions_only=True))
    rows = full.log_distributions
    assert rows.shape == (int(mask.sum()), tiny_policy.base_model.get_output_embeddings().weight.shape[0])
    torch.testing.assert_close(rows.exp().sum(-1), torch.ones(rows.shape[0]))  # distributions
    picked = rows.gather(-1, batch.input_ids[mask].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(picked, full.logprobs[mask])  # row i is the distribution of loss token i
    torch.testing.assert_close(lean.log_distributions, rows, atol=1e-5, rtol=0)
    assert tiny_policy.forward(batch).log_distributions is None
