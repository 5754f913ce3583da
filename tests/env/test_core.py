import numpy as np
import pytest

from mapo_env.actions import format_answer, format_tool_call
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError, InvalidActionType, ResetNeeded
from mapo_env.oracle import Oracle

from .helpers import toy_dataset

INFO_KEYS = {
    "alignment",
    "alignment_scores",
    "target_iou",
    "target_coverage",
    "tool_error",
    "num_tool_calls",
    "num_disabled_tool_calls",
    "num_tool_errors",
    "correct",
    "answer",
    "answer_index",
    "answer_match",
    "crop_box",
    "turn",
    "sample_id",
    "sample_index",
    "category",
    "options",
    "option_letters",
    "reward_terms",
}


def word_overlap(request):
    """A tiny deterministic scorer: 1 if the text names the annotated object in the crop, else 0."""
    reference = request.reference_caption()
    return 1.0 if reference and request.text.split()[-1] in reference else 0.0


def make_env(**kwargs):
    kwargs.setdefault("alignment", word_overlap)
    return ThinkWithImagesEnv(toy_dataset(), **kwargs)


def correct_letter(env):
    return "ABCD"[env.shown_answer_index]


def test_reset_observation_and_info():
    env = make_env()
    obs, info = env.reset(seed=3)
    assert set(obs) == {"images", "messages"}
    assert len(obs["images"]) == 1
    view = obs["images"][0]
    assert view.dtype == np.uint8 and view.ndim == 3 and view.shape[2] == 3
    assert view.shape[0] % 28 == 0 and view.shape[1] % 28 == 0
    assert obs in env.observation_space
    assert [m["role"] for m in obs["messages"]] == ["system", "user"]
    assert obs["messages"][1]["content"][0] == {"type": "image"}
    assert INFO_KEYS <= set(info)
    assert info["num_tool_calls"] == 0 and info["correct"] is None


def test_zoom_then_answer_rewards_and_info():
    env = make_env()
    obs, _ = env.reset(seed=0)
    frame = env.image_frames[0]
    box = frame.from_original((400, 300, 480, 360), "pixel")
    obs, reward, terminated, truncated, info = env.step(format_tool_call(box, label="red ball"))
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_error"] is None and info["num_tool_calls"] == 1
    assert info["target_iou"] == pytest.approx(1.0) and info["target_coverage"] == pytest.approx(1.0)
    assert info["alignment"] == 1.0 and info["alignment_scores"] == [1.0]
    assert len(obs["images"]) == 2
    assert obs["messages"][-1]["role"] == "user" and {"type": "image"} in obs["messages"][-1]["content"]
    obs, reward, terminated, truncated, info = env.step(format_answer(correct_letter(env)))
    assert terminated and not truncated and info["correct"] is True
    assert reward == pytest.approx(1.0 + 0.1 + 0.1)
    assert info["reward_terms"] == {"correct": 1.0, "format": 0.1, "tool_bonus": 0.1}


def test_wrong_answer_and_option_text_answer():
    env = make_env()
    env.reset(seed=0)
    wrong = "ABCD"[(env.shown_answer_index + 1) % 4]
    _, reward, terminated, _, info = env.step(format_answer(wrong))
    assert terminated and info["correct"] is False and reward == pytest.approx(0.1)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(f"<answer>{env.shown_options[env.shown_answer_index]}</answer>")
    assert info["correct"] is True and reward == pytest.approx(1.1)  # no zoom: no tool bonus


def test_crop_is_cut_from_the_original_image():
    env = make_env(crop_min_pixels=28 * 28, crop_max_pixels=10**7)
    env.reset(seed=0)
    image = env.current_sample.load_image()
    frame = env.image_frames[0]
    box = frame.from_original((392, 308, 504, 420), "pixel")  # 112x112 original pixels, multiple of 28
    obs, *_ = env.step(format_tool_call(box, label="red ball"))
    assert np.array_equal(obs["images"][1], image[308:420, 392:504])


def test_tool_errors_are_data():
    env = make_env()
    env.reset(seed=0)
    cases = [
        ("no tags here", "no_action"),
        ("<tool_call>{not json</tool_call>", "bad_json"),
        ('<tool_call>{"name": "draw", "arguments": {}}</tool_call>', "unknown_tool"),
        (format_tool_call((10, 10, 5, 5), label="ball"), "bad_bbox"),
        (format_tool_call((10, 10, 50, 50)), "missing_label"),
        (format_tool_call((10, 10, 50, 50), label="ball", image_index=7), "bad_image_index"),
    ]
    for text, code in cases:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(text)
        assert info["tool_error"] == code, text
        assert (terminated, truncated) == (False, False)
        reply = obs["messages"][-1]["content"][0]["text"]
        assert "Error" in reply and len(reply) < 600


def test_truncation_at_max_turns_and_format_flag():
    env = make_env(max_turns=2)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step("hello")
    assert not terminated and not truncated
    _, reward, terminated, truncated, info = env.step("still no action")
    assert truncated and not terminated and reward == 0.0 and info["correct"] is None
    with pytest.raises(ResetNeeded):
        env.step("<answer>A</answer>")
    env.reset(seed=0)
    env.step("garbage")
    _, reward, *_ = env.step(format_answer(correct_letter(env)))
    assert reward == pytest.approx(1.0)  # correct, but not well formed: no format term


def test_overlong_action_truncates():
    env = make_env(max_action_chars=100)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("x" * 1_000_000)
    assert truncated and not terminated and info["tool_error"] == "action_too_long"
    assert len(obs["messages"][-2]["content"][0]["text"]) == 100


def test_misuse_raises_named_errors():
    env = make_env()
    with pytest.raises(ResetNeeded, match="reset"):
        env.step("<answer>A</answer>")
    env.reset(seed=0)
    with pytest.raises(InvalidActionType, match="DiscreteZoomActions"):
        env.step(3)
    with pytest.raises(ConfigError, match="coords"):
        make_env(coords="pixels")
    with pytest.raises(ConfigError, match="index"):
        env.reset(options={"index": 99})
    with pytest.raises(ConfigError, match="permutation"):
        env.reset(options={"index": 0, "option_order": [0, 0, 1, 2]})


def test_option_shuffle_is_seeded_and_switchable():
    env = make_env()
    orders = set()
    for seed in range(12):
        env.reset(seed=seed, options={"index": 0})
        orders.add(env.shown_options)
        assert env.shown_options[env.shown_answer_index] == env.current_sample.answer
    assert len(orders) > 1
    env.reset(seed=5, options={"index": 0})
    first = env.shown_options
    env.reset(seed=5, options={"index": 0})
    assert env.shown_options == first
    fixed = make_env(shuffle_options=False)
    fixed.reset(seed=1)
    assert fixed.shown_options == fixed.current_sample.options and fixed.shown_answer_index == 0
    env.reset(seed=0, options={"index": 1, "option_order": [3, 2, 1, 0]})
    assert env.shown_answer_index == 3


def test_reset_index_selects_sample():
    env = make_env()
    for index in (0, 2, 1):
        _, info = env.reset(options={"index": index})
        assert info["sample_index"] == index and info["sample_id"] == f"toy-{index}"


def test_post_mode_scores_the_next_description():
    env = make_env(description_mode="post")
    env.reset(seed=0)
    box = env.image_frames[0].from_original((400, 300, 480, 360), "pixel")
    _, _, _, _, info = env.step(format_tool_call(box))  # no label needed in post mode
    assert info["tool_error"] is None and info["alignment"] is None
    _, _, terminated, _, info = env.step("<description>a red ball</description><answer>A</answer>")
    assert terminated and info["alignment"] == 1.0 and info["alignment_scores"] == [1.0]
    env.reset(seed=0)
    env.step(format_tool_call(box))
    _, _, _, _, info = env.step("<answer>A</answer>")
    assert info["alignment"] == 0.0  # a turn after a crop without a description scores 0


def test_nested_zoom_maps_back_to_original():
    env = make_env(crop_min_pixels=28 * 28, crop_max_pixels=10**7)
    env.reset(seed=0)
    image = env.current_sample.load_image()
    box = env.image_frames[0].from_original((280, 224, 504, 448), "pixel")
    env.step(format_tool_call(box, label="ball"))
    crop_frame = env.image_frames[1]
    inner = crop_frame.from_original((336, 280, 448, 392), "pixel")
    obs, _, _, _, info = env.step(format_tool_call(inner, label="ball", image_index=1))
    assert info["crop_box"] == (336.0, 280.0, 448.0, 392.0)
    assert np.array_equal(obs["images"][2], image[280:392, 336:448])


def test_zoom_disabled_returns_the_full_view():
    env = make_env(zoom_enabled=False)
    obs, _ = env.reset(seed=0)
    box = env.image_frames[0].from_original((400, 300, 480, 360), "pixel")
    obs, _, _, _, info = env.step(format_tool_call(box, label="red ball"))
    assert info["tool_error"] is None
    import cv2

    h, w = obs["images"][1].shape[:2]
    assert np.array_equal(obs["images"][1], cv2.resize(obs["images"][0], (w, h), interpolation=cv2.INTER_AREA))


def test_observations_do_not_share_memory():
    env = make_env()
    obs1, _ = env.reset(seed=0)
    obs2, *_ = env.step(format_tool_call(env.image_frames[0].from_original((400, 300, 480, 360), "pixel"), "ball"))
    assert not np.shares_memory(obs1["images"][0], obs2["images"][0])
    assert obs1["messages"] is not obs2["messages"]


def test_oracle_solves_and_zooms_exactly():
    env = make_env()
    oracle = Oracle(env)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        obs, _, _, _, info = env.step(oracle.act(obs))
        # integer boxes snapped outward: the whole target, at most a pixel of margin per side
        assert info["target_coverage"] == 1.0 and info["target_iou"] > 0.9 and info["alignment"] == 1.0
        obs, reward, terminated, _, info = env.step(oracle.act(obs))
        assert terminated and info["correct"] and reward == pytest.approx(1.2)


def test_render_modes():
    env = make_env(render_mode="rgb_array")
    env.reset(seed=0)
    env.step(format_tool_call(env.image_frames[0].from_original((400, 300, 480, 360), "pixel"), "ball"))
    frame = env.render()
    assert frame.shape == env.image_frames[0].shown_size[::-1] + (3,)
    text_env = make_env(render_mode="ansi")
    text_env.reset(seed=0)
    text_env.step("<answer>B</answer>")
    text = text_env.render()
    assert "[assistant] <answer>B</answer>" in text and "<image 0>" in text


def test_unknown_render_mode_rejected():
    with pytest.raises(ConfigError):
        make_env(render_mode="human")


def test_check_env_passes_on_core_env():
    from gymnasium.utils.env_checker import check_env

    env = make_env()
    check_env(env, skip_render_check=True)
