"""Grounded SFT on real Tiles oracle episodes: which image tokens get which words, who points where, the loss sum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mapo_agent.algorithms import GroundedSFT, GroundedSFTConfig, make_algorithm
from mapo_agent.policy import HFPolicy
from mapo_agent.rollout import RolloutWorker
from mapo_agent.types import ForwardRequest
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories

CELL, VIEW_SCALE = 56, 2  # Tiles: 56-px cells on a 224 canvas shown at 112


@pytest.fixture(scope="module")
def policy():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield HFPolicy.from_pretrained(device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def episodes(policy):
    """Four oracle episodes with their environments' samples."""
    worker = RolloutWorker("MAPO-Tiles-v0", {"alignment": "lexical"})
    trajectories = worker.run(policy, [0, 1, 2, 3], 1, seed=5, actor="oracle")
    samples = [env.unwrapped.current_sample for env in worker.envs[:4]]
    return trajectories, samples


def _cell_index(bbox) -> int:
    return int(bbox[1] // CELL) * 4 + int(bbox[0] // CELL)


def _pairs(targets, row: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r, position, token in zip(targets.caption_rows, targets.caption_positions, targets.caption_tokens):
        if r == row:
            out.setdefault(position, []).append(token)
    return out


def test_captions_name_each_tile_and_give_x1_y2(policy, episodes):
    trajectories, samples = episodes
    batch = policy.collate(trajectories)
    targets = GroundedSFT().targets(policy, batch)
    layout = policy.image_tokens(batch)
    encode = policy.processor.encode_text
    for row, sample in enumerate(samples):
        pairs = _pairs(targets, row)
        view = layout[row][0].positions.tolist()
        expected = {}
        for obj in sample.objects:  # full view: the name, then x1 and y2 in view pixels
            x1, y2 = int(obj.bbox[0] // VIEW_SCALE), int(obj.bbox[3] // VIEW_SCALE)
            expected[view[_cell_index(obj.bbox)]] = encode(obj.name) + encode(str(x1)) + encode(str(y2))
        got_view = {p: t for p, t in pairs.items() if p in view}
        assert got_view == expected  # empty cells predict nothing
        crop = layout[row][1].positions.tolist()  # the zoom on the target: its caption (pattern included)
        target = sample.targets[0]
        caption = encode(target.caption()) + encode("0") + encode("112")
        assert all(pairs[p] == caption for p in crop)
        assert sample.answer.split()[0] in policy.processor.decode(caption)


def test_the_zoom_call_points_at_the_target_cell(policy, episodes):
    trajectories, samples = episodes
    batch = policy.collate(trajectories)
    targets = GroundedSFT().targets(policy, batch)
    layout = policy.image_tokens(batch)
    assert len(targets.pointing) == len(samples)  # one zoom call per episode; the answer turn points nowhere
    for (row, queries, keys), trajectory, sample in zip(targets.pointing, trajectories, samples):
        start, end = trajectory.turn_spans[0]
        assert queries == list(range(start, end))
        assert keys == [int(layout[row][0].positions[_cell_index(sample.targets[0].bbox)])]


def test_loss_is_nll_plus_weighted_terms(policy, episodes):
    trajectories, _ = episodes
    batch = policy.collate(trajectories)
    algo = make_algorithm("grounded_sft", caption_coef=0.3, pointing_coef=0.7)
    with torch.no_grad():
        loss, metrics = algo.loss(policy, batch)
        plain, _ = make_algorithm("sft").loss(policy, batch)
        targets = algo.targets(policy, batch)
        out = policy.forward(batch, ForwardRequest(layer_hidden_states=True, attentions=True))
    assert metrics["train/nll"] == pytest.approx(plain.item(), rel=1e-5)
    expected = metrics["train/nll"] + 0.3 * metrics["train/caption_loss"] + 0.7 * metrics["train/pointing_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    hidden = out.layer_hidden_states[0][targets.caption_rows, targets.caption_positions]
    embeddings = policy.base_model.get_input_embeddings().weight
    per_pair = F.cross_entropy(hidden @ embeddings.T, torch.tensor(targets.caption_tokens), reduction="none")
    # each captioned image weighs the same, each captioned token within it too, each of its targets too
    weights = torch.zeros_like(per_pair)
    images = [(row, img.positions.tolist()) for row, imgs in enumerate(policy.image_tokens(batch)) for img in imgs]
    for row, positions in images:
        pairs = [
            i
            for i, (r, p) in enumerate(zip(targets.caption_rows, targets.caption_positions))
            if r == row and p in positions
        ]
        tokens = {targets.caption_positions[i] for i in pairs}
        for i in pairs:
            per_token = sum(targets.caption_positions[j] == targets.caption_positions[i] for j in pairs)
            weights[i] = 1.0 / (len(tokens) * per_token)
    caption = (per_pair * weights).sum() / weights.sum()
    assert weights.sum().item() == pytest.approx(2 * len(trajectories))  # view + crop of each episode
    assert metrics["train/caption_loss"] == pytest.approx(caption.item(), rel=1e-4)
    terms = []
    for layer in (1, 2):
        for row, queries, keys in targets.pointing:
            mass = out.attentions[layer][row, 0][queries][:, keys].sum(-1)
            terms.append(-torch.log(mass + 1e-6).mean())
    assert metrics["train/pointing_loss"] == pytest.approx(torch.stack(terms).mean().item(), rel=1e-4)
    off = make_algorithm("grounded_sft", caption_coef=0.0, pointing_coef=0.0)
    assert off.loss(policy, batch)[0].item() == pytest.approx(plain.item(), rel=1e-6)


def test_a_few_steps_teach_captions_and_pointing(policy, episodes):
    trajectories, _ = episodes
    model = HFPolicy(
        type(policy.base_model)._from_config(policy.base_model.config), policy.processor
    )  # a fresh copy to train
    model.base_model.load_state_dict(policy.base_model.state_dict())
    batch = model.collate(trajectories)
    algo = GroundedSFT()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    history = []
    for _ in range(12):
        loss, metrics = algo.loss(model.train(), batch)
        history.append(metrics)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for key, factor in (("train/caption_loss", 0.7), ("train/nll", 0.7), ("train/pointing_loss", 0.85)):
        assert history[-1][key] < factor * history[0][key], key
    assert history[-1]["train/pointing_mass"] > history[0]["train/pointing_mass"]


def test_ungrounded_batches_are_plain_sft():
    policy = FakePolicy(seed=1)  # a TrainablePolicy without the grounding methods
    batch = policy.collate(make_batch_trajectories(policy, [[True, False], [False, True, True]], seed=2))
    grounded, metrics = GroundedSFT().loss(policy, batch)
    plain, _ = make_algorithm("sft").loss(policy, batch)
    assert grounded.item() == pytest.approx(plain.item()) and "train/caption_loss" not in metrics


def test_duplicates_within_a_group_are_dropped(episodes):
    trajectories, _ = episodes
    doubled = [t for t in trajectories for _ in range(3)]
    kept = GroundedSFT().select_groups(doubled)
    assert [t.sample_index for t in kept] == [t.sample_index for t in trajectories]
    assert kept.num_groups == len({t.group_id for t in trajectories})


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"caption_coords": ("x1", "z9")}, "caption_coords"),
        ({"caption_coef": -1.0}, "caption_coef"),
        ({"min_coverage": 0.0}, "min_coverage"),
        ({"pointing_heads": 0}, "pointing_heads"),
    ],
)
def test_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        GroundedSFTConfig(**fields)


def test_layers_beyond_the_model_are_named(policy, episodes):
    batch = policy.collate(episodes[0])
    with pytest.raises(ConfigError, match="pointing_layers"):
        make_algorithm("grounded_sft", pointing_layers=(7,)).loss(policy, batch)
    with pytest.raises(ConfigError, match="caption_layer"):
        make_algorithm("grounded_sft", caption_layer=9, pointing_coef=0.0).loss(policy, batch)
