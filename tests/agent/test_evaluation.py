import math

import pytest

from mapo_agent.evaluation import mean_ci95, summarize
from mapo_agent.types import Trajectory


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
