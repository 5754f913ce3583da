"""MAPO never collapses to GRPO in silence: on real V* and on a box-less HR-Bench file, the description matters.

Two episodes of the same question zoom on the same box, one labelling it truthfully and one wrongly,
then give the same answer: their rewards are equal, so GRPO's advantages are equal (zero); MAPO's
must differ — or the environment must refuse, at construction, a scorer that cannot score the data.
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch

import mapo_env  # noqa: F401
from mapo_agent.algorithms import make_algorithm
from mapo_agent.types import AdvantageInput
from mapo_env.errors import MapoError
from tests.env.data.test_hrbench import HEADER, noise, png_b64, write_tsv


def zoom(label: str, box: tuple[float, float, float, float]) -> str:
    args = {"label": label, "bbox_2d": [round(v) for v in box]}
    return f'<tool_call>{{"name": "image_zoom_in_tool", "arguments": {json.dumps(args)}}}</tool_call>'


def play(env: gym.Env, label: str, box_of) -> dict:
    """Reset to question 0, zoom on ``box_of(env)`` with ``label``, answer A; the episode's record."""
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, info = env.step(zoom(label, box_of(env)))
    scores = [info["alignment"]] if info["alignment"] is not None else []
    _, reward, _, _, info = env.step("<answer>A</answer>")
    return {"reward": reward, "scores": scores}


def advantages(name: str, episodes: list[dict]) -> torch.Tensor:
    inp = AdvantageInput(
        rewards=torch.tensor([e["reward"] for e in episodes]),
        group_ids=torch.zeros(len(episodes), dtype=torch.long),
        correct=torch.zeros(len(episodes), dtype=torch.bool),
        alignment_scores=[e["scores"] for e in episodes],
        num_tool_calls=torch.ones(len(episodes), dtype=torch.long),
        response_lengths=torch.ones(len(episodes), dtype=torch.long),
        truncated=torch.zeros(len(episodes), dtype=torch.bool),
    )
    return make_algorithm(name).compute_advantages(inp)


def check_truthful_beats_wrong(make_env, truthful: str, wrong: str, box_of) -> None:
    """Default scorer: refused with a named error, or MAPO separates the labels; ``clip:tiny`` must separate them."""
    try:
        env = make_env({})
    except MapoError as err:  # refused at construction, with a message that names a fix
        assert "alignment" in str(err)
    else:
        episodes = [play(env, truthful, box_of), play(env, wrong, box_of)]
        assert episodes[0]["reward"] == episodes[1]["reward"]
        mapo = advantages("mapo", episodes)
        assert advantages("grpo", episodes).tolist() == [0.0, 0.0]
        assert mapo[0] != mapo[1], f"MAPO == GRPO in silence: alignment {[e['scores'] for e in episodes]}"
    env = make_env({"alignment": "clip:tiny"})
    episodes = [play(env, truthful, box_of), play(env, wrong, box_of)]
    assert all(e["scores"] for e in episodes)
    assert episodes[0]["scores"] != episodes[1]["scores"]
    mapo = advantages("mapo", episodes)
    assert mapo[0] != mapo[1]


def test_real_vstar_sample(vstar_dir):
    def make_env(kwargs):  # boxes in original pixels, as the annotations are
        return gym.make("MAPO-VStar-v0", data_dir=str(vstar_dir), coords="original", **kwargs)

    def target_box(env):
        return env.unwrapped.current_sample.targets[0].bbox

    env = make_env({"alignment": "clip:tiny"})
    env.reset(seed=0, options={"index": 0})
    target = env.unwrapped.current_sample.targets[0].name
    check_truthful_beats_wrong(make_env, target, "a pink elephant", target_box)


def test_hrbench_file_without_boxes(tmp_path):
    image = noise(256, 192, seed=3)
    image[40:120, 60:160] = (220, 30, 30)  # a red block: the truthful label says so
    rows = [["0", "What colour is the block?", "A", "single", "red", "blue", "green", "white", "q0", png_b64(image)]]
    write_tsv(tmp_path / "hr_bench_4k.tsv", rows, header=HEADER)

    def make_env(kwargs):
        return gym.make("MAPO-HRBench4K-v0", data_dir=str(tmp_path), coords="original", **kwargs)

    check_truthful_beats_wrong(make_env, "a red block", "a blue sky", lambda env: (60, 40, 160, 120))
    with pytest.raises(MapoError, match="alignment"):  # a scorer that needs boxes cannot score this file
        gym.make("MAPO-HRBench4K-v0", data_dir=str(tmp_path), alignment="annotation")
