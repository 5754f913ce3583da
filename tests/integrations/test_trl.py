"""TRL route, end to end with the real TRL: a 2-step MapoGRPOTrainer run of the bundled tiny Qwen2.5-VL.

Run: ``pytest -m trl -n 0 tests/integrations/test_trl.py`` after ``bash scripts/install_trl.sh``.
Skipped cleanly (module-level ``importorskip``) when TRL is not installed; deselected by default.

The bundled model is random, so it would almost never write a zoom call: the test scripts the model's
*generations* (TRL's own tests patch ``model.generate`` the same way) -- in every group one rollout
zooms on a fixed box and then answers, the other generates freely. Everything else is real: TRL's
tool loop, our environment and rewards, the image-only processor, the forward pass and the update.
"""

from __future__ import annotations

import copy
import functools

import pytest

pytest.importorskip("trl", reason="TRL integration needs the [trl] extra: bash scripts/install_trl.sh")

import torch  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402
from trl import GRPOConfig  # noqa: E402
from trl.chat_template_utils import (  # noqa: E402
    is_chat_template_prefix_preserving,
    parse_response,
    supports_tool_calling,
)

from mapo_agent.algorithms.advantages import AdvantageConfig, compute_mapo_advantage  # noqa: E402
from mapo_agent.integrations.trl import MapoGRPOTrainer, load_processor  # noqa: E402
from mapo_agent.policy.tiny import bundled_model_path  # noqa: E402
from mapo_agent.types import AdvantageInput  # noqa: E402
from mapo_env.integrations import trl as mapo_trl  # noqa: E402

pytestmark = pytest.mark.trl

ENV_ID = "MAPO-Tiles-v0"
ZOOMS = [
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "red tile", "bbox_2d": [0, 0, 56, 56]}}'
    "</tool_call>",
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "blue tile", "bbox_2d": [56, 56, 112, 112]}}'
    "</tool_call>",
]
ANSWER = "<answer>A</answer>"


class RecordingEnv(mapo_trl.MapoToolEnv):
    """MapoToolEnv that keeps every crop it returned (to find them in the forward pass)."""

    crops: list = []

    def image_zoom_in_tool(self, label: str, bbox_2d: list[float], image_index: int = 0) -> list | str:
        out = super().image_zoom_in_tool(label, bbox_2d, image_index)
        if isinstance(out, list):
            RecordingEnv.crops.append(out[0]["image"])
        return out

    image_zoom_in_tool.__doc__ = mapo_trl.MapoToolEnv.image_zoom_in_tool.__doc__


class RecordingTrainer(MapoGRPOTrainer):
    """Keeps what the loss saw and what the estimator produced, batch by batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_inputs: list[dict] = []
        self.batches: list[tuple] = []

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        records = [copy.deepcopy(env.record) for env in self.environments]
        self.batches.append((records, output["advantages"].clone(), self.last_batch))
        return output

    def _compute_loss(self, model, inputs):
        self.loss_inputs.append({k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in inputs.items()})
        return super()._compute_loss(model, inputs)


BAD_ZOOM = (
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "tile", "bbox_2d": [0, 0, 5]}}</tool_call>'
)


def scripted_generate(model, tokenizer, first_turns=None):
    """Wrap ``model.generate``: first turns of rows 0, 1 (one group) and 2 zoom, row 3 is free; then they answer.

    Group (0, 1) has two zooms on different boxes, so MAPO's semantic term is live there; group (2, 3)
    mixes a zoom with a free generation (no tool call: outcome term only). ``first_turns`` (one text
    per row) replaces that plan.
    """
    real = model.generate
    zooms = [tokenizer.encode(z, add_special_tokens=False) for z in ZOOMS]
    answer = tokenizer.encode(ANSWER, add_special_tokens=False)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    tool_response = tokenizer.convert_tokens_to_ids("<tool_response>")

    @functools.wraps(real)
    def generate(*args, **kwargs):
        out = real(*args, **kwargs)
        input_ids = kwargs["input_ids"]
        prompt_len = input_ids.shape[1]
        after_tool = bool((input_ids == tool_response).any())
        rows = []
        for i in range(out.shape[0]):
            if after_tool:
                rows.append(answer + [eos])
            elif first_turns is not None:
                rows.append(tokenizer.encode(first_turns[i % len(first_turns)], add_special_tokens=False) + [eos])
            elif i % 4 != 3:
                rows.append(zooms[i % 2] + [eos])
            else:
                rows.append(out[i, prompt_len:].tolist())
        width = max(len(r) for r in rows)
        completions = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=out.dtype)
        return torch.cat([input_ids, completions.to(out.device)], dim=1)

    model.generate = generate


def test_tool_chat_template_is_tool_capable_and_prefix_preserving():
    processor = load_processor(bundled_model_path())
    assert supports_tool_calling(processor)
    assert is_chat_template_prefix_preserving(processor)
    tokenizer = processor.tokenizer
    ids = tokenizer.encode(ZOOMS[0] + "<|im_end|>", add_special_tokens=False)
    prefix = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    parsed = parse_response(tokenizer, ids, prefix=prefix)
    call = parsed["tool_calls"][0]["function"]
    assert call["name"] == "image_zoom_in_tool"
    assert call["arguments"]["bbox_2d"] == [0, 0, 56, 56]


def make_trainer(
    tmp_path, processor, model, steps, factory, trainer_class=MapoGRPOTrainer, max_completion_length=96, **kwargs
):
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        max_steps=steps,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=max_completion_length,
        max_tool_calling_iterations=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
    )
    return trainer_class(
        model=model,
        processing_class=processor,
        args=args,
        train_dataset=mapo_trl.make_dataset(ENV_ID, num_questions=8, seed=0),
        environment_factory=factory,
        **kwargs,
    )


def test_failed_zooms_only_train_without_images(tmp_path):
    """A tool-loop iteration whose calls all fail (no crop) takes TRL's other multimodal branch."""
    path = bundled_model_path()
    processor = load_processor(path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    scripted_generate(model, processor.tokenizer, first_turns=[BAD_ZOOM])
    trainer = make_trainer(tmp_path, processor, model, 1, mapo_trl.MapoEnvFactory(ENV_ID))
    trainer.train()
    assert trainer.last_batch.inputs.alignment_scores == [[None]] * 4
    assert all(r.answered and r.num_tool_calls == 0 for r in trainer.last_batch.records)


def test_zoom_rolled_back_by_trl_is_undone_in_the_environment(tmp_path):
    """A crop that would overflow max_completion_length is dropped by TRL after the env stepped it."""
    path = bundled_model_path()
    processor = load_processor(path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    scripted_generate(model, processor.tokenizer, first_turns=[ZOOMS[0]])
    zoom_tokens = len(processor.tokenizer.encode(ZOOMS[0], add_special_tokens=False)) + 1
    envs, replays = [], []

    class CountingEnv(mapo_trl.MapoToolEnv):
        def _replay(self, calls):
            replays.append(len(calls))
            super()._replay(calls)

    def factory():
        envs.append(CountingEnv(ENV_ID))
        return envs[-1]

    trainer = make_trainer(tmp_path, processor, model, 1, factory, max_completion_length=zoom_tokens + 4)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "tools/call_frequency" in h]
    assert logged[0]["tools/call_frequency"] == 1.0  # every rollout called the tool, and the env stepped it
    records = trainer.last_batch.records
    assert all(r.num_tool_calls == 0 and r.tool_call_scores == [] and not r.answered for r in records)
    assert replays == [0, 0, 0, 0]  # each env had stepped the zoom; the replay kept none of it
    assert all(len(env.env.unwrapped.image_frames) == 1 for env in envs[1:])  # and left no crop


def test_two_step_mapo_training_zooms_sees_the_crop_and_uses_our_advantage(tmp_path):
    torch.manual_seed(0)
    path = bundled_model_path()
    processor = load_processor(path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    scripted_generate(model, processor.tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    RecordingEnv.crops = []
    factory = mapo_trl.MapoEnvFactory(ENV_ID)
    config = AdvantageConfig()
    trainer = make_trainer(
        tmp_path,
        processor,
        model,
        2,
        lambda: RecordingEnv(factory.env_id, factory.env_kwargs),
        trainer_class=RecordingTrainer,
        advantage_config=config,
    )
    trainer.train()

    assert len(trainer.batches) == 2 and len(trainer.loss_inputs) == 2
    # at least one rollout zoomed, and its crop went into the training forward pass
    zoomed = [r for records, _, _ in trainer.batches for r in records if r.num_tool_calls > 0]
    assert zoomed and RecordingEnv.crops
    assert len(RecordingEnv.crops) == 3 * 2  # three zooms per step
    for step, inputs in enumerate(trainer.loss_inputs):
        assert sorted(inputs["num_images"]) == [1, 2, 2, 2]  # the full view, plus one crop for each zoom
        pixel_rows = inputs["pixel_values"]
        for crop in RecordingEnv.crops[3 * step : 3 * step + 3]:
            patches = processor.image_processor(images=[crop], return_tensors="pt")["pixel_values"]
            found = any(
                torch.equal(pixel_rows[i : i + len(patches)], patches)
                for i in range(len(pixel_rows) - len(patches) + 1)
            )
            assert found, f"step {step}: a crop's patches are not in the forward pass"
    # the advantage the loss used is our estimator on the same batch, computed here from the episodes
    for (records, advantages, last), inputs in zip(trainer.batches, trainer.loss_inputs):
        inp = AdvantageInput(
            rewards=torch.tensor([r.reward for r in records]),
            group_ids=torch.arange(len(records)) // 2,
            correct=torch.tensor([r.correct for r in records]),
            alignment_scores=[r.tool_call_scores for r in records],
            num_tool_calls=torch.tensor([r.num_tool_calls for r in records]),
            response_lengths=torch.zeros(len(records), dtype=torch.long),
            truncated=torch.tensor([r.truncated for r in records]),
        )
        expected = compute_mapo_advantage(inp, config)
        assert torch.equal(advantages.cpu(), expected)
        assert torch.equal(last.advantages, expected)
        assert sorted(inputs["advantages"].tolist()) == sorted(expected.tolist())
    assert any(adv.abs().sum() > 0 for _, adv, _ in trainer.batches)
    semantic = [last.inputs.alignment_scores[:2] for _, _, last in trainer.batches]
    assert all(len(a) == 1 and len(b) == 1 for a, b in semantic)  # both rollouts of group 0 zoomed
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed, "no weight changed in two steps"
