import math

import pytest

from mapo_agent.metrics import MetricsLogger, read_metrics, trajectory_metrics
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
