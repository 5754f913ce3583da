"""A fake policy with canned strings (malformed tool calls included) drives the whole training pipeline.

No Hugging Face model: the canned texts go through the real environments, the real rollout worker,
the real algorithms and the real trainer (checkpoints, evaluation, metrics, plots); a tiny torch model
from the algorithm tests supplies the log-probs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from mapo_agent.algorithms import make_algorithm
from mapo_agent.config import EnvConfig, OptimConfig, RolloutConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.rollout import RolloutWorker
from mapo_agent.trainer import Trainer
from mapo_agent.types import Trajectory

from .algorithms.fake_policy import IMAGE_TOKEN, NUM_PATCHES, VOCAB, FakePolicy

CANNED = [
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "red tile", "bbox_2d": [0, 0, 56, 56]}}',
    "<tool_call>{not json at all</tool_call>",
    '<tool_call>{"name": "draw_box", "arguments": {}}</tool_call>',
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [9, 9, 1, 1], "label": "x"}}</tool_call>',
    "I think it is striped.",
    "<answer>B</answer>",
]


@dataclass
class CannedState:
    """Episode bookkeeping of the canned policy (token ids hashed from characters)."""

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    image: np.ndarray | None = None
    turns: int = 0
    seen_messages: int = 0


def _ids(text: str) -> list[int]:
    return [2 + (ord(c) % (VOCAB - 2)) for c in text[:40]] or [2]


class CannedPolicy:
    """Rollout side: canned strings in rotation; training side: :class:`FakePolicy`."""

    def __init__(self, texts: list[str]) -> None:
        self.model = FakePolicy()
        self.training_model = self.model
        self.texts = itertools.cycle(texts)
        self.temperature = 1.0
        self.processor = None

    # rollout side ---------------------------------------------------------------------------------
    def start_episode(self, obs: dict[str, Any]) -> CannedState:
        image = cv2.resize(obs["images"][0], (4, 4), interpolation=cv2.INTER_AREA)
        state = CannedState(image=image, seen_messages=len(obs["messages"]))
        self._extend(state, _ids(obs["messages"][-1]["content"][-1]["text"]) + [IMAGE_TOKEN] * NUM_PATCHES, 0)
        return state

    def generate(self, states: list[CannedState], **kwargs: Any) -> list[str]:
        texts = [next(self.texts) for _ in states]
        for state, text in zip(states, texts):
            self.force_turn(state, text)
        return texts

    def force_turn(self, state: CannedState, text: str) -> None:
        self._extend(state, _ids(text), 1)
        state.turns += 1

    def observe(self, state: CannedState, obs: dict[str, Any]) -> None:
        new = obs["messages"][state.seen_messages + 1 :]
        text = "".join(p.get("text", "") for m in new for p in m["content"])
        self._extend(state, _ids(text), 0)
        state.seen_messages = len(obs["messages"])

    def to_trajectory(self, state: CannedState, *, group_id: int, sample_index: int, **fields: Any) -> Trajectory:
        fields.setdefault("num_turns", state.turns)
        n = len(state.input_ids)
        return Trajectory(
            input_ids=list(state.input_ids),
            loss_mask=list(state.loss_mask),
            old_logprobs=[0.0] * n,
            images=[state.image],
            group_id=group_id,
            sample_index=sample_index,
            **fields,
        )

    @staticmethod
    def _extend(state: CannedState, ids: list[int], mask: int) -> None:
        state.input_ids += ids
        state.loss_mask += [mask] * len(ids)

    # training side --------------------------------------------------------------------------------
    def collate(self, trajectories):
        return self.model.collate(trajectories)

    def forward(self, batch, request=None):
        return self.model.forward(batch, request)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    @property
    def base_model(self) -> FakePolicy:
        return self.model

    def train(self, mode: bool = True) -> CannedPolicy:
        self.model.train(mode)
        return self

    def eval(self) -> CannedPolicy:
        return self.train(False)

    def frozen_copy(self) -> CannedPolicy:
        copy = CannedPolicy(CANNED)
        copy.model.load_state_dict(self.model.state_dict())
        for p in copy.model.parameters():
            p.requires_grad_(False)
        return copy

    def save_pretrained(self, directory: str | Path, merge_lora: bool = False) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), Path(directory) / "fake.pt")


def test_canned_texts_go_through_env_rollout_and_algorithm():
    policy = CannedPolicy(CANNED)
    worker = RolloutWorker("MAPO-Tiles-v0", {"alignment": "lexical", "max_turns": 6})
    trajectories = worker.run(policy, [0, 1], group_size=3, seed=0)
    assert len(trajectories) == 6 and {t.group_id for t in trajectories} == {0, 1}
    errors = {e for t in trajectories for e in t.tool_errors}
    assert {"bad_json", "unknown_tool", "bad_bbox", "no_action"} <= errors
    zoomed = [t for t in trajectories if t.num_tool_calls]  # episodes that drew the well-formed call
    assert zoomed and all(len(t.alignment_scores) == t.num_tool_calls for t in zoomed)
    assert all(t.num_turns >= 1 and sum(t.loss_mask) > 0 for t in trajectories)
    mapo = make_algorithm("mapo")
    prepared = mapo.prepare(trajectories)
    assert prepared.advantages.shape == (6,)
    batch = mapo.training_batch(policy, prepared.trajectories, prepared.advantages)
    batch.ref_logprobs = policy.frozen_copy().forward(batch).logprobs  # GRPO's KL to the reference (0.04)
    loss, metrics = mapo.loss(policy, batch)
    assert torch.isfinite(loss) and "train/loss" in metrics


def test_oracle_turns_are_teacher_forced_into_the_same_states():
    policy = CannedPolicy(CANNED)
    worker = RolloutWorker("MAPO-Tiles-v0", {"alignment": "lexical"})
    trajectories = worker.run(policy, [3], group_size=2, seed=0, actor="oracle")
    assert all(t.correct and t.num_tool_calls == 1 and not t.tool_errors for t in trajectories)
    assert all(sum(t.loss_mask) > 0 for t in trajectories)


@pytest.mark.parametrize("algo", ["mapo", "grpo", "dapo"])
def test_trainer_runs_end_to_end_with_the_canned_policy(tmp_path, algo):
    config = TrainConfig(
        algo=algo,
        steps=2,
        sft_steps=1,
        sft_algo="sft",  # grounded_sft needs image tokens, which a canned policy has none of
        output_dir=str(tmp_path / "run"),
        eval_episodes=4,
        eval_every=1,
        save_every=1,
        progress_bar=False,
        cpu=True,
        env=EnvConfig(kwargs={"alignment": "lexical"}),
        rollout=RolloutConfig(questions_per_step=2, group_size=3),
        optim=OptimConfig(warmup_steps=0),
    )
    policy = CannedPolicy(CANNED)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    summary = Trainer(config, policy=policy).train()
    rows = read_metrics(Path(config.output_dir) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[1]["tools/error_rate/bad_json"] > 0 and rows[1]["tools/calls_per_episode"] > 0
    assert rows[0]["rollout/accuracy"] == 1.0  # the cold start plays the oracle
    assert "eval/accuracy" in rows[2] and summary["num_questions"] == 4
    assert (Path(config.output_dir) / "final" / "fake.pt").is_file()
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters()))
