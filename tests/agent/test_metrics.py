import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_agent.metrics import MetricsLogger, progress_postfix, read_metrics, trajectory_metrics
from mapo_agent.types import Trajectory


def traj(**fields):
    return Trajectory([1, 2, 3], [0, 1, 1], [0.0] * 3, [], group_id=0, sample_index=0, **fields)


def test_trajectory_metrics_by_hand():
    trajectories = [
        traj(reward=1.2, correct=True, alignment_scores=[0.9], target_ious=[1.0], num_tool_calls=1, num_turns=2),
        traj(reward=0.1, correct=False, alignment_scores=[0.2, 0.8], target_ious=[0.0, 0.05], num_tool_calls=2,
             num_turns=3, tool_errors=["bad_bbox"]),
        traj(reward=0.0, correct=False, truncated=True, num_turns=4, tool_errors=["no_action", "no_action"]),
    ]  # fmt: skip
    m = trajectory_metrics(trajectories)
    assert m["rollout/reward"] == pytest.approx(1.3 / 3)
    assert m["rollout/accuracy"] == pytest.approx(1 / 3)
    assert m["rollout/alignment"] == pytest.approx((0.9 + 0.2 + 0.8) / 3)
    assert m["rollout/misaligned_share"] == pytest.approx(1 / 3)
    assert m["rollout/confident_miss_share"] == pytest.approx(1 / 3)  # answered, last crop IoU 0.05
    assert m["rollout/target_hit_rate"] == pytest.approx(1 / 3)
    assert m["tools/calls_per_episode"] == 1.0
    assert m["tools/error_rate"] == pytest.approx(3 / 9)
    assert m["tools/error_rate/no_action"] == pytest.approx(2 / 9)
    assert m["tools/error_rate/bad_json"] == 0.0
    assert math.isnan(trajectory_metrics([traj()])["rollout/alignment"])


def test_logger_writes_and_truncates(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(4):
        logger.log(step, {"a": float(step), "b": float("nan")})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and rows[0]["b"] is None
    logger.truncate_after(1)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1]


# ----------------------------------------------------------------------------- the zoom-off ablation
def test_disabled_zoom_calls_are_not_crops():
    """A trajectory played with zoom_enabled=False: its calls are counted as disabled, its scores left out."""
    off = {"zoom_enabled": False}
    trajectories = [
        traj(correct=True, alignment_scores=[1.0], target_ious=[1.0], num_tool_calls=1, num_turns=2, info=off),
        traj(correct=True, alignment_scores=[0.9, 0.2], target_ious=[1.0, 0.0], num_tool_calls=2, num_turns=3,
             info=dict(off)),
    ]  # fmt: skip
    m = trajectory_metrics(trajectories, prefix="eval")
    assert m["eval/tool_calls"] == 0.0 and m["eval/disabled_tool_calls"] == 1.5
    for key in ("eval/alignment", "eval/target_iou", "eval/target_hit_rate"):
        assert math.isnan(m[key]), key  # no crop was shown: "no value", never a perfect 1.0
    assert m["eval/misaligned_share"] == 0.0 and m["eval/confident_miss_share"] == 0.0
    assert m["eval/accuracy"] == 1.0  # what the model answered still counts

    mixed = trajectory_metrics([*trajectories, traj(alignment_scores=[0.4], target_ious=[0.5], num_tool_calls=1)])
    assert mixed["rollout/tool_calls"] == pytest.approx(1 / 3) and mixed["rollout/disabled_tool_calls"] == 1.0
    assert mixed["rollout/alignment"] == 0.4 and mixed["rollout/target_iou"] == 0.5
    assert mixed["tools/calls_per_episode"] == mixed["rollout/tool_calls"]


def test_every_batch_reports_the_same_keys():
    assert set(trajectory_metrics([traj()])) == set(trajectory_metrics([traj(info={"zoom_enabled": False})]))


# ----------------------------------------------------------------------------- the progress bar
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10)


@settings(max_examples=50, deadline=None)
@given(reward=finite, accuracy=finite, loss=finite, held_out=st.one_of(st.none(), finite))
def test_progress_bar_never_shows_the_oracles_numbers_as_the_models(reward, accuracy, loss, held_out):
    metrics = {"rollout/reward": reward, "rollout/accuracy": accuracy, "train/loss": loss}
    sft = progress_postfix("cold_start", metrics, held_out)
    assert sft["stage"] == "sft" and sft["loss"] == f"{loss:.3f}"
    assert "reward" not in sft and "accuracy" not in sft  # the cold start's rollouts are the oracle's
    rl = progress_postfix("rl", metrics, held_out)
    assert rl["stage"] == "rl" and rl["reward"] == f"{reward:.3f}" and rl["accuracy"] == f"{accuracy:.3f}"
    for shown in (sft, rl):
        assert ("held_out_acc" in shown) == (held_out is not None)


def test_progress_bar_skips_missing_and_nan_values():
    assert progress_postfix("cold_start", {"train/loss": float("nan")}) == {"stage": "sft"}
    assert progress_postfix("rl", {}, float("nan")) == {"stage": "rl"}
