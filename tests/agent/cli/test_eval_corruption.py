"""mapo-eval --corruption: the robustness table (clean vs each corruption), its numbers and its refusals."""

from __future__ import annotations

import json

import pytest

from mapo_agent.cli import evaluate
from mapo_agent.evaluation import _mean_row, robustness_markdown
from mapo_env.corruptions import SEEN_CORRUPTIONS

TILES = ["--env-kwargs", "alignment=lexical", "max_turns=2"]


def test_oracle_robustness_table_over_the_seen_set(tmp_path):
    argv = ["--oracle", "--num-questions", "4", "--corruption", "seen", "--severity", "5", *TILES]
    assert evaluate.main([*argv, "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    rows = report["robustness"]
    assert [r["condition"] for r in rows] == ["clean", *SEEN_CORRUPTIONS, "mean (seen)"]
    assert all(r["questions"] == 4 and r["accuracy"] == 1.0 for r in rows)  # the oracle reads no pixels
    assert all(r["delta"] == 0.0 for r in rows[1:]) and "delta" not in rows[0]
    assert report["avg@1"] == 1.0 and report["settings"]["robustness"]["severity"] == 5
    markdown = (tmp_path / "eval.md").read_text()
    assert "## Robustness to visual corruptions (severity 5" in markdown
    assert "| jpeg | seen | 4 | 100.0% | ± 0.0 | +0.0 | ± 0.0 |" in markdown


def test_bundled_tiny_agent_under_one_corruption(tmp_path):
    argv = ["--num-questions", "3", "--max-new-tokens", "16", "--cpu", "--corruption", "gaussian_noise", *TILES]
    assert evaluate.main([*argv, "--severity", "4", "--output-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "eval.json").read_text())["robustness"]
    assert [(r["condition"], r["split"], r["episodes"]) for r in rows] == [
        ("clean", "-", 3),
        ("gaussian_noise", "seen", 3),
    ]
    assert 0.0 <= rows[1]["accuracy"] <= 1.0 and rows[1]["severity"] == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corruption", "blurry"], "unseen: motion_blur"),
        (["--corruption", "jpeg", "--severity", "6"], "severity must be an int in [1, 2, 3, 4, 5]"),
        (["--corruption", "jpeg", "--corruption-target", "crop"], "--corruption-target must be one of"),
    ],
)
def test_bad_corruption_arguments_are_one_line_errors(tmp_path, capsys, extra, message):
    assert evaluate.main(["--oracle", "--output-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mapo-eval: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_paired_difference_and_its_interval_by_hand():
    row = _mean_row("jpeg", "seen", 3, {0: 1.0, 1: 0.0}, {0: 1.0, 1: 1.0}, 1)
    assert row["accuracy"] == 0.5 and row["delta"] == -0.5
    assert row["delta_ci95"] == pytest.approx(1.96 * (0.5 / 2) ** 0.5)  # diffs [0, -1]: sample var 0.5, n = 2
    lines = robustness_markdown([_mean_row("clean", "-", None, {0: 1.0, 1: 1.0}, None, 1), row], k=1)
    assert lines[-1] == "| jpeg | seen | 2 | 50.0% | ± 98.0 | -50.0 | ± 98.0 |"


def test_evaluate_refuses_a_corruption_with_a_built_worker():
    from mapo_agent.evaluation import evaluate as run_eval
    from mapo_env.errors import ConfigError

    with pytest.raises(ConfigError, match="corruption or a worker"):
        run_eval(None, "MAPO-Tiles-v0", corruption="jpeg", worker=object())  # type: ignore[arg-type]
