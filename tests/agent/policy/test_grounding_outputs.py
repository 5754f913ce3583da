"""HFPolicy's outputs for grounding losses: image-token layout, layer states, attentions, LM head, loss-only logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mapo_agent.types import ForwardRequest


@pytest.fixture(scope="module")
def batch(tiny_policy, two_episodes):
    """Two episodes with images of different grids: a 112x112 view + crops (56x56, 56x84)."""
    _, states = two_episodes
    return tiny_policy.collate([tiny_policy.to_trajectory(s) for s in states])


def test_image_tokens_follow_the_placeholders_and_the_grids(tiny_policy, batch):
    layout = tiny_policy.image_tokens(batch)
    # row 0: 112x112 view (8x8 patches -> 4x4 tokens), crops 56x56 (2x2) and 56x84 (2x3 tokens, h=56, w=84)
    assert [img.grid for img in layout[0]] == [(4, 4), (2, 2), (2, 3)]
    assert [img.grid for img in layout[1]] == [(2, 3), (2, 3)]
    for row, images in enumerate(layout):
        placeholders = (batch.input_ids[row] == tiny_policy.processor.image_token_id).nonzero().flatten()
        assert torch.equal(torch.cat([img.positions for img in images]), placeholders)
        for img in images:
            assert len(img.positions) == img.grid[0] * img.grid[1]
            assert torch.equal(img.positions, img.positions[0] + torch.arange(len(img.positions)))  # one run each


def test_layer_states_and_attentions(tiny_policy, batch):
    model = tiny_policy.base_model
    text_config = model.config.text_config
    before = text_config._attn_implementation
    with torch.no_grad():
        out = tiny_policy.forward(batch, ForwardRequest(layer_hidden_states=True, attentions=True))
        plain = tiny_policy.forward(batch)
    assert text_config._attn_implementation == before  # switched to eager for the call only
    layers = text_config.num_hidden_layers
    assert len(out.layer_hidden_states) == layers + 1 and len(out.attentions) == layers
    b, t = batch.input_ids.shape
    assert all(h.shape == (b, t, text_config.hidden_size) for h in out.layer_hidden_states)
    # Entry 0 at image tokens = the vision features the language model receives.
    with torch.no_grad():
        embeds = model.get_input_embeddings()(batch.input_ids)
    text = ~out.image_token_mask & batch.attention_mask.bool()
    torch.testing.assert_close(out.layer_hidden_states[0][text], embeds[text])
    assert not torch.allclose(out.layer_hidden_states[0][out.image_token_mask], embeds[out.image_token_mask])
    for probs in out.attentions:
        assert probs.shape == (b, text_config.num_attention_heads, t, t)
        rows = probs.sum(-1)[batch.attention_mask.bool()[:, None, :].expand(-1, probs.shape[1], -1)]
        torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-4, rtol=0)
        assert torch.triu(probs, diagonal=1).abs().max() < 1e-6  # causal
    torch.testing.assert_close(out.logprobs, plain.logprobs, atol=1e-4, rtol=0)  # eager = sdpa


def test_loss_positions_only_gives_the_same_masked_logprobs(tiny_policy, batch):
    with torch.no_grad():
        full = tiny_policy.forward(batch)
        lean = tiny_policy.forward(batch, ForwardRequest(loss_positions_only=True))
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(lean.logprobs[mask], full.logprobs[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(lean.entropy[mask], full.entropy[mask], atol=1e-5, rtol=0)
    assert (lean.logprobs[~mask] == 0).all() and (lean.entropy[~mask] == 0).all()


def test_lm_head_logits_and_encode_text(tiny_policy):
    hidden = torch.randn(3, tiny_policy.base_model.config.text_config.hidden_size)
    weight = tiny_policy.base_model.get_input_embeddings().weight  # tied head
    torch.testing.assert_close(tiny_policy.lm_head_logits(hidden), hidden @ weight.T)
    ids = tiny_policy.encode_text("red tile")
    assert tiny_policy.processor.decode(ids) == "red tile" and np.all(np.array(ids) >= 0)
