import json
import math
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_agent.evaluation import EvaluationInterrupted, evaluate, mean_ci95, select_questions, summarize
from mapo_agent.types import Trajectory
from mapo_env.errors import ConfigError


def traj(question, correct, category="a"):
    return Trajectory([1], [1], [0.0], [], group_id=question, sample_index=question, correct=correct,
                      info={"category": category})  # fmt: skip


def test_mean_ci95_by_hand():
    mean, half = mean_ci95([1.0, 0.0, 1.0, 1.0])
    assert mean == 0.75
    assert half == pytest.approx(1.96 * math.sqrt(0.25 / 4))  # sample variance 0.25
    assert mean_ci95([0.4]) == (0.4, 0.0)
    assert all(math.isnan(x) for x in mean_ci95([]))


def test_avg_at_k_groups_by_question_and_category():
    trajectories = [
        traj(0, True),
        traj(0, False),
        traj(1, True),
        traj(1, True),
        traj(2, False, "b"),
        traj(2, False, "b"),
    ]
    report = summarize("MAPO-Tiles-v0", trajectories, k=2)
    assert report.num_questions == 3 and report.k == 2
    assert report.accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert report.categories["a"]["questions"] == 2 and report.categories["a"]["accuracy"] == 0.75
    assert report.categories["b"]["accuracy"] == 0.0
    assert "Avg@2" in report.markdown() and report.to_dict()["avg@2"] == report.accuracy


# ----------------------------------------------------------------------------- which questions
@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5000), n=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_sampled_questions_are_distinct_in_range_and_reproducible(size, n, seed):
    drawn = select_questions(size, n, sample_seed=seed)
    assert len(drawn) == min(n, size) == len(set(drawn)) and all(0 <= q < size for q in drawn)
    assert drawn == sorted(drawn) == select_questions(size, n, sample_seed=seed)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5000), n=st.integers(1, 300), data=st.data())
def test_an_offset_gives_a_contiguous_slice(size, n, data):
    offset = data.draw(st.integers(0, size - 1))
    assert select_questions(size, n, offset=offset) == list(range(offset, min(offset + n, size)))


def test_seeds_draw_different_subsets_and_bad_selections_are_refused():
    assert select_questions(10**6, 20, sample_seed=0) != select_questions(10**6, 20, sample_seed=1)
    assert select_questions(50, 200) == list(range(50))  # all of a small dataset
    for kwargs in ({"offset": 50}, {"offset": -1}, {"sample_seed": -1}, {"offset": 2, "sample_seed": 0},
                   {"offset": True}):  # fmt: skip
        with pytest.raises(ConfigError):
            select_questions(50, 10, **kwargs)
    with pytest.raises(ConfigError):
        select_questions(50, 0)


# ----------------------------------------------------------------------------- real episodes
@pytest.fixture(scope="module")
def tiny_policy():
    from mapo_agent.policy import HFPolicy

    return HFPolicy.from_pretrained(None, device="cpu", max_new_tokens=8)


TILES = {"split": "test", "alignment": "lexical", "max_turns": 2}


def test_the_zoom_off_ablation_reports_no_crop(tiny_policy, one_thread):
    """The oracle zooms on the target every episode; with the zoom disabled it was shown the full view."""
    on = evaluate(tiny_policy, "MAPO-Tiles-v0", TILES, num_questions=4, actor="oracle")
    off = evaluate(tiny_policy, "MAPO-Tiles-v0", {**TILES, "zoom_enabled": False}, num_questions=4, actor="oracle")
    assert on.metrics["eval/tool_calls"] == 1.0 and on.metrics["eval/target_iou"] == 1.0
    assert on.metrics["eval/disabled_tool_calls"] == 0.0
    assert off.metrics["eval/tool_calls"] == 0.0 and off.metrics["eval/disabled_tool_calls"] == 1.0
    for key in ("eval/alignment", "eval/target_iou", "eval/target_hit_rate"):
        assert math.isnan(off.metrics[key]), key
    assert all(t.info["zoom_enabled"] is False for t in off.trajectories)
    assert "| eval/target_iou | n/a |" in off.markdown()


class InterruptedPolicy:
    """The real tiny policy, and a user who presses Ctrl-C once the second batch of questions has started."""

    def __init__(self, policy, after_episodes):
        self.policy, self.after, self.started = policy, after_episodes, 0

    def start_episode(self, obs):
        self.started += 1
        return self.policy.start_episode(obs)

    def generate(self, states, **kwargs):
        if self.started > self.after:
            raise KeyboardInterrupt
        return self.policy.generate(states, **kwargs)

    def __getattr__(self, name):
        return getattr(self.policy, name)


def test_an_interrupted_evaluation_keeps_the_finished_episodes(tiny_policy, one_thread, tmp_path):
    policy = InterruptedPolicy(tiny_policy, after_episodes=2)
    with pytest.raises(KeyboardInterrupt):  # by default the interruption propagates as it was
        evaluate(policy, "MAPO-Tiles-v0", TILES, num_questions=4, batch_questions=2)
    policy.started = 0
    with pytest.raises(EvaluationInterrupted) as stopped:
        evaluate(policy, "MAPO-Tiles-v0", TILES, num_questions=4, batch_questions=2, keep_partial=True)
    report = stopped.value.report
    assert isinstance(stopped.value.cause, KeyboardInterrupt)
    assert report.num_questions == 2 and "stopped after 2 of 4 episodes" in report.settings["incomplete"]
    json_path, md_path = report.save(tmp_path)
    assert "INCOMPLETE" in md_path.read_text()
    assert json.loads(json_path.read_text())["settings"]["incomplete"].startswith("stopped after 2")


def test_reports_are_strict_json_and_written_whole(tmp_path):
    report = summarize("MAPO-Tiles-v0", [traj(0, True)], k=1)
    assert math.isnan(report.metrics["eval/alignment"])
    json_path, _ = report.save(tmp_path / "new" / "folder")
    text = json_path.read_text()
    assert "NaN" not in text and json.loads(text)["metrics"]["eval/alignment"] is None
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["eval.json", "eval.md"]  # no temporary left


def test_the_cli_saves_elsewhere_when_its_folder_fails_after_the_evaluation(tmp_path, monkeypatch, capsys):
    from mapo_agent.cli.evaluate import EvalConfig, _write

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "fallback-root"))
    (tmp_path / "fallback-root").mkdir()
    (tmp_path / "gone").write_text("the output folder became a file during the evaluation")
    report = summarize("MAPO-Tiles-v0", [traj(0, True), traj(1, False)], k=1)
    assert _write(EvalConfig(output_dir=str(tmp_path / "gone")), report) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the report was saved to" in err
    saved = list((tmp_path / "fallback-root").glob("mapo-eval-*/eval.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["avg@1"] == 0.5
