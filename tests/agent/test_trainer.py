"""The trainer end to end on the real tiny Qwen2.5-VL agent: files, every algorithm, resume, NaN guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mapo_agent.algorithms import ALGORITHMS
from mapo_agent.config import TrainConfig
from mapo_agent.memory import peak_rss_bytes
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer, TrainingDiverged
from tests.agent.tiny_run import tiny_config

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("one_thread")]


def test_a_callback_can_stop_the_run_early(tmp_path):
    class StopAfterFirstStep:
        def on_step_end(self, trainer, step, metrics):
            trainer.should_stop = True

    config = tiny_config(tmp_path, steps=3)
    summary = Trainer(config, callbacks=[StopAfterFirstStep()]).train()
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert summary["stopped_after_step"] == 0 and [r["step"] for r in rows] == [0]
    assert "eval/accuracy" in rows[0] and (Path(config.output_dir) / "final" / "config.json").is_file()


def test_run_writes_every_artifact(tmp_path):
    config = tiny_config(tmp_path)
    trainer = Trainer(config)
    summary = trainer.train()
    assert list(trainer.workers) == ["rl"]  # the cold start's environments were closed when RL began
    run = Path(config.output_dir)
    for name in ("config.json", "metrics.jsonl", "summary.json", "eval.json", "eval.md", "final/config.json"):
        assert (run / name).is_file(), name
    assert {p.name for p in (run / "plots").glob("*.png")} == {
        "reward.png",
        "accuracy.png",
        "alignment.png",
        "tool_calls.png",
        "grad_norm.png",
    }
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    keys = set().union(*rows)
    for prefix in ("rollout/", "train/", "tools/", "eval/"):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert rows[0]["train/stage"] == 1.0 and rows[1]["train/stage"] == 0.0  # SFT, then RL
    assert rows[0]["rollout/accuracy"] == 1.0  # the SFT stage plays the oracle
    assert "eval/accuracy" in rows[-1] and summary["num_questions"] == 2
    written = json.loads((run / "summary.json").read_text())  # the memory bound and what it held to
    assert written["max_tokens_per_micro_batch"] == config.resolved().optim.max_tokens_per_micro_batch
    assert written["max_tokens_per_generation"] == config.resolved().rollout.max_tokens_per_generation
    assert 50 < written["peak_rss_mb"] <= peak_rss_bytes() / 2**20 + 1  # this process's peak so far, in MB
    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert saved == config.resolved()


@pytest.mark.parametrize("algo", [n for n in ALGORITHMS.names() if n != "sft"])
def test_one_step_of_every_algorithm_updates_the_model(tmp_path, algo):
    config = tiny_config(tmp_path, algo=algo, steps=1, sft_steps=0)
    trainer = Trainer(config)
    before = [p.detach().clone() for p in trainer.policy.trainable_parameters()]
    metrics = trainer._train_step(0)
    after = list(trainer.policy.trainable_parameters())
    if metrics.get("train/skipped"):  # dynamic sampling may drop every group of an untrained model
        assert algo in ("dapo", "vgpo")
        return
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_sft_step_updates_the_model(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=0, sft_steps=1))
    before = [p.detach().clone() for p in trainer.policy.trainable_parameters()]
    metrics = trainer._train_step(0)
    assert metrics["rollout/accuracy"] == 1.0 and metrics["train/nll"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.trainable_parameters()))


def test_nan_loss_stops_before_the_optimizer_step(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, steps=2, sft_steps=0, save_every=1)
    trainer = Trainer(config)
    algorithm = trainer._algorithm(config.stage_at(0))
    original = algorithm.loss
    calls = {"n": 0}

    def poisoned(policy, batch):
        loss, metrics = original(policy, batch)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 1 else loss), metrics

    monkeypatch.setattr(algorithm, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match="step 1: loss is NaN"):
        trainer.train()
    checkpoints = sorted(p.name for p in (Path(config.output_dir) / "checkpoints").iterdir())
    assert checkpoints == ["step-000000"]  # nothing saved for the diverged step


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mapo_agent.cli.train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_run_resumes_with_identical_metrics(tmp_path):
    """SIGKILL mapo-train after its step-1 checkpoint, resume, and compare with an uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    common = [
        "--steps", "3", "--sft-steps", "1", "--save-every", "2", "--eval-every", "0", "--eval-episodes", "2",
        "--rollout.questions-per-step", "2", "--rollout.group-size", "2", "--rollout.max-new-tokens", "24",
        "--optim.warmup-steps", "1", "--env.kwargs", "alignment=\"lexical\"", "max_turns=3", "--no-progress-bar",
        "--cpu",
    ]  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _run_cli([*common, "--output-dir", str(full)], env).wait(timeout=600) == 0

    process = _run_cli([*common, "--output-dir", str(cut)], env)
    marker = cut / "checkpoints" / "step-000001" / "trainer_state.json"
    deadline = time.time() + 600
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.stderr.read() if process.poll() is not None else "no checkpoint in time"
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = _run_cli([*common, "--output-dir", str(cut), "--resume"], env)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    def comparable(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "train/tokens_per_s"} for r in rows]

    expected, got = read_metrics(full / "metrics.jsonl"), read_metrics(cut / "metrics.jsonl")
    assert [r["step"] for r in got] == [0, 1, 2, 3]
    assert comparable(got[2:]) == comparable(expected[2:])


def test_two_cpu_processes_keep_identical_weights(tmp_path):
    """``accelerate launch --num_processes 2 --cpu`` (gloo DDP): a few steps, the same weights on both."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = tmp_path / "ddp"
    # accelerate's own --cpu launcher starts one process unless MPI is used; its multi-process launcher
    # (torchrun underneath) with mapo-train --cpu gives gloo DDP on CPU processes.
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "mapo_agent.cli.train", "--cpu",
        "--steps", "2", "--sft-steps", "1", "--save-every", "0", "--eval-every", "0", "--eval-episodes", "2",
        "--rollout.questions-per-step", "2", "--rollout.group-size", "2", "--rollout.max-new-tokens", "16",
        "--env.kwargs", "alignment=lexical", "max_turns=3", "--no-progress-bar", "--output-dir", str(run),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    first, second = summary["weight_fingerprints"]
    assert first == second
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["rollout/episodes"] == 1  # SFT: 1 question per process, the deterministic oracle played once
    assert rows[1]["rollout/episodes"] == 2  # RL: 1 question x 2 rollouts per process
    assert summary["num_questions"] == 2  # the evaluation gathers both processes' episodes


def test_lora_run_saves_a_loadable_merged_model(tmp_path):
    from mapo_agent.config import ModelConfig
    from mapo_agent.policy import HFPolicy

    config = tiny_config(tmp_path, steps=1, sft_steps=1, model=ModelConfig(lora_rank=4))
    trainer = Trainer(config)
    trainable = sum(p.numel() for p in trainer.policy.trainable_parameters())
    total = sum(p.numel() for p in trainer.policy.parameters())
    assert 0 < trainable < total / 10  # only the adapters train
    trainer.train()
    reloaded = HFPolicy.from_pretrained(str(tmp_path / "run" / "final"), device="cpu")
    assert not hasattr(reloaded.model, "merge_and_unload")
    assert sum(p.numel() for p in reloaded.parameters()) == sum(
        p.numel() for p in HFPolicy.from_pretrained().parameters()
    )
