"""The three CLIs: manuals, argument parsing, and real runs (oracle evaluation, pictures, plots)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mapo_agent.cli import evaluate, train, visualize
from mapo_agent.cli.args import parse_dataclass
from mapo_agent.config import TrainConfig


@pytest.mark.parametrize("module", ["train", "evaluate", "visualize"])
def test_help_reads_as_a_manual(module):
    out = subprocess.run(
        [sys.executable, "-m", f"mapo_agent.cli.{module}", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "examples:" in out and "(default:" in out
    assert len(out.splitlines()) > 25


def test_train_arguments_map_onto_the_config():
    config = parse_dataclass(
        TrainConfig,
        [
            "--algo", "grpo", "--steps", "7", "--rollout.group-size", "4", "--no-progress-bar",
            "--env.kwargs", "coords=norm1000", "max_turns=3", "--optim.betas", "0.8", "0.9",
            "--model.name-or-path", "none", "--algo-kwargs", 'advantage={"scale": "none"}',
        ],
        "mapo-train",
        "",
    )  # fmt: skip
    assert config.algo == "grpo" and config.steps == 7 and config.rollout.group_size == 4
    assert config.progress_bar is False and config.optim.betas == (0.8, 0.9)
    assert config.env.kwargs == {"coords": "norm1000", "max_turns": 3}
    assert config.model.name_or_path is None
    assert config.algo_kwargs == {"advantage": {"scale": "none"}}
    assert config.sft_steps == TrainConfig().sft_steps  # untouched fields keep the defaults


def test_unknown_algorithm_is_a_clean_error(capsys):
    assert train.main(["--algo", "mapoo", "--output-dir", "unused"]) == 2
    err = capsys.readouterr().err
    assert "mapo-train: error:" in err and "mapo" in err


def test_eval_oracle_writes_reports(tmp_path, capsys):
    code = evaluate.main(
        [
            "--oracle",
            "--num-questions",
            "6",
            "--k",
            "2",
            "--output-dir",
            str(tmp_path),
            "--env-kwargs",
            "alignment=lexical",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["avg@2"] == 1.0 and report["num_questions"] == 6 and report["k"] == 2
    assert "pattern" in report["categories"]
    assert "Avg@2: 100.0%" in (tmp_path / "eval.md").read_text()
    assert "Avg@2" in capsys.readouterr().out


def test_eval_of_the_untrained_bundled_model_runs(tmp_path):
    code = evaluate.main(
        ["--num-questions", "2", "--max-new-tokens", "16", "--output-dir", str(tmp_path), "--cpu",
         "--env-kwargs", "alignment=lexical", "max_turns=2"]
    )  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "eval.json").read_text())["num_questions"] == 2


def test_viz_draws_episodes_and_run_plots(tmp_path, capsys):
    assert visualize.main(["--oracle", "--episodes", "2", "--output-dir", str(tmp_path / "viz")]) == 0
    assert len(list((tmp_path / "viz").glob("episode_*.png"))) == 2
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"step": s, "rollout/reward": s / 10, "rollout/accuracy": s / 20, "train/grad_norm": 1.0} for s in range(5)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert visualize.main(["--run", str(run)]) == 0
    assert (run / "plots" / "reward.png").is_file()


def test_eval_with_the_zoom_disabled_reports_what_happened(tmp_path):
    """The issue's ablation, through the CLI: no crop was made, so no zoom on target and no target IoU."""
    argv = ["--oracle", "--num-questions", "3", "--env-kwargs", "alignment=lexical", "zoom_enabled=false"]
    assert evaluate.main([*argv, "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["eval/tool_calls"] == 0.0 and metrics["eval/disabled_tool_calls"] == 1.0
    assert metrics["eval/target_iou"] is None and metrics["eval/target_hit_rate"] is None
    assert metrics["eval/alignment"] is None


def test_eval_help_says_what_a_seed_changes_and_how_to_draw_other_questions(capsys):
    assert evaluate.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "What --seed changes" in out and "never changes which questions are asked" in out
    assert "--sample-seed" in out and "--question-offset" in out


def test_eval_draws_another_held_out_subset(tmp_path):
    argv = ["--oracle", "--num-questions", "3", "--env-kwargs", "alignment=lexical"]
    assert evaluate.main([*argv, "--sample-seed", "5", "--output-dir", str(tmp_path)]) == 0
    assert evaluate.main([*argv, "--question-offset", "10", "--output-dir", str(tmp_path), "--stem", "slice"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["settings"]["questions"] == "3 drawn with sample seed 5"
    assert json.loads((tmp_path / "slice.json").read_text())["settings"]["questions"] == "10..12"


def test_train_progress_bar_shows_the_stage_and_the_models_own_numbers(tmp_path, capsys, one_thread):
    """A two-step run through mapo-train: the SFT step shows its loss, never the oracle's reward/accuracy."""
    argv = [
        "--sft-steps", "1", "--steps", "1", "--eval-every", "1", "--eval-episodes", "2", "--save-every", "0",
        "--rollout.questions-per-step", "2", "--rollout.group-size", "2", "--rollout.max-new-tokens", "8",
        "--env.kwargs", "alignment=lexical", "max_turns=2", "--cpu", "--output-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert train.main(argv) == 0
    captured = capsys.readouterr()
    assert f"run written to {tmp_path / 'run'}" in captured.out
    assert "memory: micro-batches of <= 8192 tokens, generation chunks of <= 16384 tokens; peak RSS" in captured.out
    bars = [part for part in captured.err.replace("\r", "\n").splitlines() if "mapo-train:" in part]
    sft = [b for b in bars if "stage=sft" in b]
    rl = [b for b in bars if "stage=rl" in b]
    assert sft and rl, captured.err[-2000:]
    assert all("loss=" in b and "reward=" not in b and "accuracy=" not in b for b in sft)
    assert all("reward=" in b and "held_out_acc=" in b for b in rl)


def test_train_help_lists_every_algorithms_options(capsys):
    from mapo_agent.algorithms import ALGORITHMS
    from mapo_agent.cli.train import main as train_main

    assert train_main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ALGORITHMS.names():
        assert f"\n  {name}: loss_agg_mode=" in out
    assert "semantic_scale='center'" in out and "dynamic_sampling_max_rounds=10" in out


def test_eval_uses_the_env_kwargs_a_run_trained_with(tmp_path):
    import json
    import shutil

    from mapo_agent.cli.evaluate import training_env_kwargs
    from mapo_agent.policy import bundled_model_path

    run = tmp_path / "run"
    shutil.copytree(bundled_model_path(), run / "final")
    kwargs = {"max_pixels": 448 * 448, "max_turns": 4, "split": "train"}
    (run / "config.json").write_text(json.dumps({"env": {"id": "MAPO-VStar-v0", "kwargs": kwargs}}))
    assert training_env_kwargs(str(run / "final"), "MAPO-VStar-v0") == {"max_pixels": 448 * 448, "max_turns": 4}
    assert training_env_kwargs(str(run / "final"), "MAPO-Tiles-v0") == {}  # trained on another env
    assert training_env_kwargs(str(tmp_path), "MAPO-VStar-v0") == {}  # no run around the model
    assert training_env_kwargs(None, "MAPO-VStar-v0")["max_turns"] == 4  # the bundled agent's per-env defaults
