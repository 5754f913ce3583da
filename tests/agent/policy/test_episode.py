"""Episode bookkeeping without a model: closing a turn, appending env replies as tokens, errors."""

from __future__ import annotations

import pytest

from mapo_agent.policy import QwenVLProcessor, bundled_model_path
from mapo_agent.policy.episode import append_observation, append_turn, start_episode
from mapo_env.errors import ConfigError
from tests.agent.policy.conftest import FakeZoomEnv


@pytest.fixture(scope="module")
def processor() -> QwenVLProcessor:
    return QwenVLProcessor.from_pretrained(bundled_model_path())


def _turn(processor: QwenVLProcessor, text: str, stopped: bool) -> list[int]:
    return processor.encode_text(text) + ([processor.turn_end_token_id] if stopped else [])


@pytest.mark.parametrize("stopped", [True, False])
def test_reply_tokens_follow_the_template(processor, stopped):
    env = FakeZoomEnv((56, 84), "What colour?", ["crop", "error", "end"], seed=0)
    state = start_episode(processor, env.reset())
    texts = [
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "cup", "bbox_2d": [1, 2, 30, 40]}}',
        "oops",
    ]
    for text in texts:
        ids = _turn(processor, text, stopped)
        append_turn(state, ids, [-1.0] * len(ids), text, stopped)
        obs, _ = env.step(text)
        append_observation(processor, state, obs)
    rendered = processor.render(env.messages, add_generation_prompt=True)
    collapsed = [
        t for i, t in enumerate(state.input_ids) if t != processor.image_token_id or state.input_ids[i - 1] != t
    ]
    assert processor.decode(collapsed) == rendered
    # Exactly one <|im_end|> closes each assistant turn, whether the model wrote it or not.
    for _, end in state.turn_spans:
        closing = state.input_ids[end - 1 : end + 1] if stopped else state.input_ids[end : end + 2]
        assert processor.decode(closing) == "<|im_end|>\n"
    assert sum(state.loss_mask) == sum(len(_turn(processor, t, stopped)) for t in texts)
    assert state.old_logprobs.count(-1.0) == sum(state.loss_mask)


def test_prompt_is_the_rendered_template(processor):
    env = FakeZoomEnv((112, 56), "Q?", ["end"], seed=1)
    obs = env.reset()
    state = start_episode(processor, obs)
    assert sum(state.loss_mask) == 0 and state.num_messages == 2 and len(state.images) == 1
    assert state.input_ids.count(processor.image_token_id) == 8  # 112x56 -> 8x4 patches -> 8 tokens
    assert state.image_grid_thw[0].tolist() == [1, 8, 4] and state.pixel_values[0].shape[0] == 32


def test_contract_violations_raise(processor):
    env = FakeZoomEnv((56, 56), "Q?", ["crop", "end"], seed=2)
    obs = env.reset()
    with pytest.raises(ConfigError, match="holds 2"):
        start_episode(processor, dict(obs, images=obs["images"] * 2))
    state = start_episode(processor, obs)
    append_turn(state, [5], [0.0], "x", False)
    with pytest.raises(ConfigError, match="no environment reply yet"):
        append_turn(state, [5], [0.0], "x", False)
    with pytest.raises(ConfigError, match="assistant turn just generated"):
        append_observation(processor, state, obs)  # the reply to the turn is not in this observation


# A Qwen3-style template: earlier assistant turns lose their <think> block, so it is not prefix-stable.
DROP_THINK_TEMPLATE = (
    "{% for m in messages %}{% set is_last = loop.last %}<|im_start|>{{ m.role }}\n{% for c in m.content %}"
    "{% if c.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif m.role == 'assistant' and not is_last %}{{ c.text.split('</think>')[-1] }}"
    "{% else %}{{ c.text }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_template_that_rewrites_earlier_turns_still_appends_only_new_tokens(processor, caplog):
    custom = QwenVLProcessor(processor.tokenizer, processor.image_processor, DROP_THINK_TEMPLATE)
    env = FakeZoomEnv((56, 56), "Q?", ["crop", "end"], seed=3)
    state = start_episode(custom, env.reset())
    text = "<think>hmm</think>zoom"
    ids = _turn(custom, text, stopped=True)
    append_turn(state, ids, [0.0] * len(ids), text, True)
    before = list(state.input_ids)
    obs, _ = env.step(text)
    append_observation(custom, state, obs)
    assert "not prefix-stable" in caplog.text
    assert state.input_ids[: len(before)] == before  # the generated <think> ids stay as sampled
    new = state.input_ids[len(before) :]
    tail = [t for i, t in enumerate(new) if t != custom.image_token_id or new[i - 1] != t]
    expected = "\n<|im_start|>user\n<tool_response><|vision_start|><|image_pad|><|vision_end|></tool_response>\n"
    assert custom.decode(tail) == expected + "Image 1. 4 turns left.<|im_end|>\n<|im_start|>assistant\n"


def test_template_that_counts_messages_cannot_be_appended(processor):
    counting = "{{ messages | length }}|" + DROP_THINK_TEMPLATE
    custom = QwenVLProcessor(processor.tokenizer, processor.image_processor, counting)
    env = FakeZoomEnv((56, 56), "Q?", ["error", "end"], seed=4)
    state = start_episode(custom, env.reset())
    append_turn(state, [5], [0.0], "x", False)
    obs, _ = env.step("x")
    with pytest.raises(ConfigError, match="prefix-stable chat_template"):
        append_observation(custom, state, obs)
