"""How the environments build, check and call their alignment scorer.

- Defaults: the procedural envs score crops with ``clip:tiny``; real data defaults to a real CLIP.
- No silent degradation: a bad spec, a CLIP without weights, or a privileged oracle on data without
  boxes fails at ``gym.make`` with a named error that says how to fix it.
- A scorer that fails inside ``step`` leaves the episode exactly as it was (property test over what a
  scorer may return or raise).
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env.alignment import ClipScorer
from mapo_env.alignment.tiny_clip import tiny_clip_path
from mapo_env.core import MAX_ALIGNMENT_FAILURES, ThinkWithImagesEnv
from mapo_env.errors import AlignmentError, ConfigError, UnknownNameError
from tests.env.helpers import toy_dataset

pytest.importorskip("sentence_transformers")

PROCEDURAL = ["MAPO-Tiles-v0", "MAPO-VStar-v0", "MAPO-HRBench4K-v0", "MAPO-TextSpot-v0"]
ZOOM = '<tool_call>{{"name": "image_zoom_in_tool", "arguments": {{"label": "{}", "bbox_2d": [380, 280, 500, 380]}}}}'
ZOOM_ORIGINAL = ZOOM.replace("[380, 280, 500, 380]", "{}")


@pytest.fixture
def no_hub(monkeypatch):
    """No CLIP configured and no hub access: what a user offline without weights has."""
    monkeypatch.delenv("MAPO_CLIP_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("mapo_env.alignment.clip.DEFAULT_CLIP_MODEL", "nobody/no-such-clip-in-any-cache")


@pytest.mark.parametrize("env_id", PROCEDURAL)
def test_procedural_envs_score_crops_with_the_tiny_clip(env_id):
    scorer = gym.make(env_id, num_samples=2).unwrapped.scorer
    assert isinstance(scorer, ClipScorer) and scorer.model == str(tiny_clip_path())
    assert not scorer.needs_annotations


@pytest.mark.parametrize("spec", ["nonsense", "clip:", "annotation:  ", "", 123, 4.5, ["clip"], b"clip"])
def test_bad_specs_fail_at_make(spec):
    with pytest.raises((UnknownNameError, ConfigError)):
        gym.make("MAPO-Tiles-v0", alignment=spec)


def test_clip_without_weights_fails_at_make_naming_the_fixes(no_hub):
    with pytest.raises(ConfigError) as err:
        gym.make("MAPO-VStar-v0", alignment="clip", num_samples=2)
    message = str(err.value)
    assert "clip:tiny" in message and "MAPO_CLIP_MODEL" in message and "no-such-clip" in message


@pytest.mark.parametrize("model", ["/no/such/folder", "not a hub id!", "a/b/c/d"])
def test_clip_model_env_var_is_checked_at_make(monkeypatch, model):
    monkeypatch.setenv("MAPO_CLIP_MODEL", model)
    with pytest.raises(ConfigError, match="from \\$MAPO_CLIP_MODEL"):
        gym.make("MAPO-Tiles-v0", alignment="clip")


def test_clip_folder_without_model_fails_at_make(tmp_path):
    with pytest.raises(ConfigError, match="holds no saved model"):
        gym.make("MAPO-Tiles-v0", alignment=f"clip:{tmp_path}")


@pytest.mark.parametrize("spec", ["lexical", "annotation"])
def test_oracles_are_allowed_where_boxes_exist(spec):
    assert gym.make("MAPO-VStar-v0", alignment=spec, num_samples=2).unwrapped.scorer.needs_annotations


# ------------------------------------------------------------------ data without boxes (HR-Bench TSV)


def _hrbench_tsv(tmp_path):
    """A one-question HR-Bench TSV whose image is a procedural tiles scene (no boxes in the file)."""
    from mapo_env.data.procedural import TilesSceneGenerator
    from tests.env.data.test_hrbench import HEADER, png_b64, write_tsv

    sample = TilesSceneGenerator().generate(np.random.default_rng([1_000_003, 0]), 0)
    row = ["0", sample.question, "A", "single", *sample.options, "q0", png_b64(sample.load_image())]
    return write_tsv(tmp_path / "hr_bench_4k.tsv", [row], header=HEADER), sample


@pytest.mark.parametrize("spec", ["lexical", "annotation"])
def test_oracles_are_refused_on_data_without_boxes(tmp_path, spec):
    tsv, _ = _hrbench_tsv(tmp_path)
    with pytest.raises(ConfigError, match="alignment='clip'") as err:
        gym.make("MAPO-HRBench4K-v0", data_dir=tsv, alignment=spec)
    assert "needs_annotations" in str(err.value)


def test_declared_annotation_needs_are_honoured(tmp_path):
    tsv, _ = _hrbench_tsv(tmp_path)
    from mapo_env.alignment import CallableScorer

    with pytest.raises(ConfigError, match="needs_annotations"):
        gym.make("MAPO-HRBench4K-v0", data_dir=tsv, alignment=CallableScorer(len, needs_annotations=True))


def _truthful_and_wrong(env, sample) -> tuple[float, float]:
    """Alignment of the target's caption and of another tile's caption, zooming on the target tile."""
    target = sample.targets[0]
    wrong = next(o for o in sample.objects if o.attributes["color"] != target.attributes["color"])
    box = [round(v) for v in target.bbox]
    scores = []
    for label in (target.caption(), wrong.caption()):
        env.reset(options={"index": 0})
        _, _, _, _, info = env.step(ZOOM_ORIGINAL.format(label, box))
        assert info["tool_error"] is None
        scores.append(info["alignment"])
    return scores[0], scores[1]


def test_default_on_hrbench_tsv_separates_truthful_from_wrong_or_is_refused(tmp_path, no_hub):
    tsv, sample = _hrbench_tsv(tmp_path)
    with pytest.raises(ConfigError) as err:  # offline, no CLIP weights: refused at make, with the fixes
        gym.make("MAPO-HRBench4K-v0", data_dir=tsv)
    assert "clip:tiny" in str(err.value) and "MAPO_CLIP_MODEL" in str(err.value)


def test_default_on_hrbench_tsv_scores_the_crop(tmp_path, monkeypatch):
    # the default on real data is "clip" with $MAPO_CLIP_MODEL; here it points at a local CLIP folder
    monkeypatch.setenv("MAPO_CLIP_MODEL", str(tiny_clip_path()))
    tsv, sample = _hrbench_tsv(tmp_path)
    env = gym.make("MAPO-HRBench4K-v0", data_dir=tsv, coords="original")
    assert isinstance(env.unwrapped.scorer, ClipScorer)
    truthful, wrong = _truthful_and_wrong(env, sample)
    assert truthful > wrong and truthful > 0.0


def test_real_vstar_default_scores_differ_or_are_refused(vstar_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a CLIP in the cache is used; none is downloaded by a test
    try:
        env = gym.make("MAPO-VStar-v0", data_dir=vstar_dir, coords="original")
    except ConfigError as err:  # no real CLIP here: refused at make, naming the fixes
        assert "clip:tiny" in str(err) and "MAPO_CLIP_MODEL" in str(err)
        return
    env.reset(options={"index": 0})
    sample = env.unwrapped.current_sample
    box = [round(v) for v in sample.targets[0].bbox]
    scores = []
    for label in (sample.targets[0].name, "a purple elephant"):
        env.reset(options={"index": 0})
        scores.append(env.step(ZOOM_ORIGINAL.format(label, box))[4]["alignment"])
    assert scores[0] != scores[1], scores


def test_real_vstar_oracles_see_its_boxes(vstar_dir):
    env = gym.make("MAPO-VStar-v0", data_dir=vstar_dir, alignment="lexical", coords="original")
    env.reset(options={"index": 0})
    target = env.unwrapped.current_sample.targets[0]
    box = [round(v) for v in target.bbox]
    info = env.step(ZOOM_ORIGINAL.format(target.name, box))[4]
    assert info["alignment"] > 0.5


# ------------------------------------------------------------------ a scorer failing inside step


class Scripted:
    """A scorer object returning (or raising) whatever the test says, then behaving."""

    name = "scripted"

    def __init__(self) -> None:
        self.outcome = None

    def score_batch(self, requests):
        outcome, self.outcome = self.outcome, None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome if outcome is not None else [0.5] * len(requests)


def _state(env) -> dict:
    ep = env.unwrapped._episode
    return {
        "turn": ep.turn,
        "images": [img.copy() for img in ep.images],
        "messages": copy.deepcopy(ep.messages),
        "scores": list(ep.alignment_scores),
        "calls": ep.num_tool_calls,
        "errors": ep.num_tool_errors,
        "pending": ep.pending_description,
        "well_formed": ep.well_formed,
        "done": ep.done,
    }


def _same(a: dict, b: dict) -> bool:
    images = len(a["images"]) == len(b["images"]) and all(
        np.array_equal(x, y) for x, y in zip(a["images"], b["images"])
    )
    rest = {k: v for k, v in a.items() if k != "images"} == {k: v for k, v in b.items() if k != "images"}
    return images and rest


BAD_OUTCOMES = st.one_of(
    st.sampled_from([RuntimeError("boom"), ValueError("bad"), MemoryError(), KeyError("k"), ZeroDivisionError()]),
    st.sampled_from([[], [0.1, 0.2], "0.5", [None], [True], [[0.5]], {"score": 1.0}, 0.5]),
)
GOOD_OUTCOMES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: [v]),
    st.integers(-5, 5).map(lambda v: [v]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcome=BAD_OUTCOMES, mode=st.sampled_from(["label", "post"]))
def test_a_failing_scorer_leaves_the_episode_as_it_was(outcome, mode):
    scorer = Scripted()
    env = ThinkWithImagesEnv(toy_dataset(1), alignment=scorer, description_mode=mode)
    obs, _ = env.reset(seed=0, options={"index": 0})
    if mode == "post":  # a crop first; its description is scored on the next turn
        obs, *_ = env.step(ZOOM.format("red ball"))
    before = _state(env)
    turn = "<description>a red ball</description><answer>A</answer>" if mode == "post" else ZOOM.format("red ball")
    scorer.outcome = outcome
    obs2, reward, terminated, truncated, info = env.step(turn)
    assert info["tool_error"] == "alignment_error" and "scripted" in info["tool_message"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert _same(_state(env), before)
    assert [m for m in obs2["messages"]] == [m for m in obs["messages"]]
    # and the episode goes on as if the failed turn had never been sent
    twin = ThinkWithImagesEnv(toy_dataset(1), alignment=Scripted(), description_mode=mode)
    twin.reset(seed=0, options={"index": 0})
    if mode == "post":
        twin.step(ZOOM.format("red ball"))
    after, twin_after = env.step(turn), twin.step(turn)
    assert after[1:4] == twin_after[1:4] and after[4] == twin_after[4]


@settings(max_examples=60, deadline=None)
@given(outcome=GOOD_OUTCOMES)
def test_any_real_number_becomes_a_score_in_the_unit_interval(outcome):
    scorer = Scripted()
    env = ThinkWithImagesEnv(toy_dataset(1), alignment=scorer)
    env.reset(options={"index": 0})
    scorer.outcome = outcome
    info = env.step(ZOOM.format("red ball"))[4]
    value = float(outcome[0])
    assert info["tool_error"] is None
    assert info["alignment"] == (0.0 if math.isnan(value) else min(max(value, 0.0), 1.0))


def test_a_user_callable_that_raises_is_undone_then_refused_when_it_persists():
    def broken(request):
        raise RuntimeError("user bug")

    env = ThinkWithImagesEnv(toy_dataset(1), alignment=broken)
    env.reset(options={"index": 0})
    for _ in range(MAX_ALIGNMENT_FAILURES - 1):
        info = env.step(ZOOM.format("red ball"))[4]
        assert info["tool_error"] == "alignment_error" and "user bug" in info["tool_message"] and info["turn"] == 0
    with pytest.raises(AlignmentError, match="3 times in a row") as err:
        env.step(ZOOM.format("red ball"))
    assert isinstance(err.value.__cause__, RuntimeError)
    assert env.unwrapped._episode.turn == 0 and len(env.unwrapped._episode.images) == 1


def test_reject_turn_is_undone_too():
    scorer = Scripted()
    env = ThinkWithImagesEnv(toy_dataset(1), alignment=scorer, description_mode="post")
    env.reset(options={"index": 0})
    env.step(ZOOM.format("red ball"))
    before = _state(env)
    scorer.outcome = RuntimeError("down")
    from mapo_env.actions import ToolError

    info = env.reject_turn("<description>a red ball</description>", ToolError.TOOL_BUDGET_EXCEEDED, "no more")[4]
    assert info["tool_error"] == "alignment_error" and _same(_state(env), before)


def test_missing_sentence_transformers_is_named_at_make(monkeypatch):
    import importlib.util

    from mapo_env.errors import DependencyNotInstalled

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "sentence_transformers" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(DependencyNotInstalled, match="alignment='lexical'"):
        gym.make("MAPO-Tiles-v0")
