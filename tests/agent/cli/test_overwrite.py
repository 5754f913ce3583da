"""One overwrite rule for the three CLIs: earlier results are never replaced or appended to unless --overwrite."""

from __future__ import annotations

import json

import pytest

from mapo_agent.cli import evaluate, train, visualize
from mapo_agent.cli.args import parse_dataclass
from mapo_agent.config import TrainConfig
from mapo_env.errors import ConfigError

ORACLE_EVAL = ["--oracle", "--num-questions", "3", "--env-kwargs", "alignment=lexical"]


@pytest.mark.parametrize("main", [train.main, evaluate.main, visualize.main])
def test_help_states_the_rule(main, capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Overwrite rule (the same for mapo-eval, mapo-viz and mapo-train)" in out and "--overwrite" in out


def test_eval_refuses_an_existing_report_then_replaces_it_with_overwrite(tmp_path, capsys):
    assert evaluate.main([*ORACLE_EVAL, "--output-dir", str(tmp_path)]) == 0
    first = (tmp_path / "eval.json").read_text()
    capsys.readouterr()
    assert evaluate.main([*ORACLE_EVAL, "--output-dir", str(tmp_path), "--k", "2"]) == 2
    err = capsys.readouterr().err
    assert "already holds eval.json" in err and "--overwrite" in err
    assert (tmp_path / "eval.json").read_text() == first  # untouched
    assert evaluate.main([*ORACLE_EVAL, "--output-dir", str(tmp_path), "--stem", "eval-k2", "--k", "2"]) == 0
    assert evaluate.main([*ORACLE_EVAL, "--output-dir", str(tmp_path), "--k", "2", "--overwrite"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["k"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval-k2.json", "eval-k2.md", "eval.json", "eval.md"]


def test_viz_refuses_earlier_pictures_and_overwrite_leaves_no_stale_episode(tmp_path, capsys):
    out = tmp_path / "viz"
    assert visualize.main(["--oracle", "--episodes", "3", "--output-dir", str(out)]) == 0
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 3
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert visualize.main(["--oracle", "--episodes", "1", "--output-dir", str(out)]) == 2
    assert "already holds episode_00001.png" in capsys.readouterr().err
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 3  # nothing appended
    assert visualize.main(["--oracle", "--episodes", "1", "--output-dir", str(out), "--overwrite"]) == 0
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 1  # replaced, not appended
    assert sorted(p.name for p in out.iterdir()) == ["episode_00001.png", "episodes.jsonl", "notes.txt"]


def train_config(tmp_path, *extra: str) -> TrainConfig:
    argv = ["--output-dir", str(tmp_path / "run"), "--env.kwargs", "alignment=lexical", *extra]
    return parse_dataclass(TrainConfig, argv, "mapo-train", "")


def test_train_refuses_an_existing_run_unless_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    train.preflight(train_config(tmp_path))  # a fresh folder passes and is not created
    assert not run.exists()
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    (run / "my_notes.md").write_text("kept")
    with pytest.raises(ConfigError, match="--resume to continue it"):
        train.preflight(train_config(tmp_path))
    train.preflight(train_config(tmp_path, "--resume"))
    assert (run / "metrics.jsonl").exists()  # --resume keeps the run
    train.preflight(train_config(tmp_path, "--overwrite"))
    assert sorted(p.name for p in run.iterdir()) == ["my_notes.md"]  # only the run's own entries went
