"""The trainer: one code path for CPU, one GPU and ``accelerate launch`` on many.

Each step: draw the step's questions from ``(seed, step)``; every process plays its share of them
(G rollouts each, through ``gym.make`` + ``reset``/``step``); the stage's algorithm selects groups,
shapes rewards and computes advantages; then ``minibatches`` optimizer steps, each accumulated over
micro-batches of at most ``optim.max_tokens_per_micro_batch`` tokens with the minibatch's loss
normalisation (:meth:`Trainer.accumulate_gradients`), gradients all-reduced by DDP. Memory is bounded
by tokens, never by sequences: the budgets and the peak resident memory end up in ``summary.json``.
The configuration is resolved first (:meth:`TrainConfig.resolved`: the model's and environment's
defaults, :mod:`mapo_agent.agent_defaults`) and saved so. The trainer never looks at an algorithm's name:
the algorithm says where its trajectories come from (``rollout_source``), whether it needs a reference
model, and what its loss is.

Stages: ``sft_steps`` of the cold-start algorithm (oracle SFT by default), then ``steps`` of the RL
algorithm, each with its own learning rate, warm-up and decay, and environment kwargs. A run directory
holds ``config.json``, ``metrics.jsonl``, ``plots/``, ``checkpoints/`` and, at the end, ``final/`` (a
loadable model folder) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mapo_agent import checkpoint as ckpt
from mapo_agent.algorithms import Algorithm, RunContext, make_algorithm
from mapo_agent.config import Stage, TrainConfig
from mapo_agent.evaluation import EvalReport, evaluate, summarize
from mapo_agent.memory import pack_by_tokens, peak_rss_bytes
from mapo_agent.metrics import MetricsLogger, progress_postfix, trajectory_metrics
from mapo_agent.policy import HFPolicy
from mapo_agent.rollout import RolloutWorker
from mapo_agent.types import LossNormalizer, Trajectory
from mapo_env.errors import ConfigError, MapoError

logger = logging.getLogger(__name__)


REFERENCE_WEIGHTS = "reference.safetensors"
"""The frozen reference model's weights inside a checkpoint folder's ``reference/`` (safetensors, module names)."""


class TrainingDiverged(MapoError):
    """A loss, gradient or reward became NaN/inf; training stopped before the optimizer step."""


class Callback(Protocol):
    """A hook into the training loop."""

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        """Called after each step (and its evaluation); may add entries to ``metrics``."""
        ...


class Trainer:
    """Runs a :class:`~mapo_agent.config.TrainConfig`.

    Args:
        config: The run's configuration.
        policy: Use this policy instead of loading ``config.model`` (tests, notebooks).
        callbacks: Objects with ``on_step_end(trainer, step, metrics)``, called after each step (and its
            evaluation) before the metrics are logged; they may add metrics to the dict (SB3-style
            hooks: diagnostics) or set ``trainer.should_stop = True`` to end the run after this step (early
            stopping: the run is evaluated, if this step was not, and finished as usual: ``final/``, plots,
            ``summary.json``).
    """

    def __init__(
        self, config: TrainConfig, policy: HFPolicy | None = None, callbacks: Sequence[Callback] = ()
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.config = config = config.resolved()  # the model's and env's defaults filled in (and saved so)
        self.callbacks = list(callbacks)
        self.run_dir = Path(config.output_dir)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        ddp = DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)
        self.accelerator = Accelerator(cpu=config.cpu or not torch.cuda.is_available(), kwargs_handlers=[ddp])
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        if config.rollout.questions_per_step % self.world:
            raise ConfigError(
                f"rollout.questions_per_step ({config.rollout.questions_per_step}) must be divisible by the number "
                f"of processes ({self.world})."
            )
        self.policy = policy or HFPolicy.from_pretrained(
            config.model.name_or_path,
            device=self.accelerator.device,
            dtype=None if config.model.dtype == "auto" else config.model.dtype,
            attn_implementation=config.model.attn_implementation,
            gradient_checkpointing=config.model.gradient_checkpointing,
            lora_rank=config.model.lora_rank,
            temperature=config.rollout.temperature,
            top_p=config.rollout.top_p,
            max_new_tokens=config.rollout.max_new_tokens,
        )
        self.policy.max_tokens_per_generation = config.rollout.max_tokens_per_generation
        if config.rollout.backend == "vllm":  # a colocated engine that follows the trained weights
            from mapo_agent.policy.vllm_generator import VLLMGenerator

            self.policy.generator = VLLMGenerator.for_policy(self.policy, config.model.name_or_path)
        optim = config.optim
        self.optimizer = torch.optim.AdamW(
            self.policy.trainable_parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
        )
        model, self.optimizer = self.accelerator.prepare(self.policy.model, self.optimizer)
        self.policy.training_model = model
        self.algorithms: dict[str, Algorithm] = {}
        self.reference: HFPolicy | None = None
        self.workers: dict[str, RolloutWorker] = {}
        self.eval_worker = RolloutWorker(
            config.env.id,
            {**config.env.kwargs, **config.env.eval_kwargs},
            max_concurrent_questions=config.rollout.max_concurrent_questions,
        )
        self.step = 0
        self.should_stop = False
        self.metrics: MetricsLogger | None = None
        self.last_eval: EvalReport | None = None

    # ------------------------------------------------------------------------------------ main loop
    def train(self) -> dict[str, Any]:
        """Run every remaining step; returns the summary (also written to ``summary.json``)."""
        config = self.config
        is_main = self.accelerator.is_main_process
        if is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / "config.json")
        self.metrics = MetricsLogger(self.run_dir) if is_main else None
        if self.metrics is not None and not config.resume:
            self.metrics.truncate_after(-1)  # a fresh run starts a fresh metrics file
        start_step = self._resume() if config.resume else 0
        started = time.perf_counter()
        progress = self._progress(start_step)
        for step in range(start_step, config.total_steps):
            self.step = step
            metrics = self._train_step(step)
            evaluated = (config.eval_every and (step + 1) % config.eval_every == 0) or step + 1 == config.total_steps
            if evaluated:
                metrics.update(self._evaluate().metrics)
            for callback in self.callbacks:
                callback.on_step_end(self, step, metrics)
            if self.should_stop and not evaluated:
                metrics.update(self._evaluate().metrics)
            if is_main and (step % config.log_every == 0 or step + 1 == config.total_steps):
                self.metrics.log(step, metrics)
            if (config.save_every and (step + 1) % config.save_every == 0) or step + 1 == config.total_steps:
                self.save_checkpoint(step)
            if self.should_stop:
                logger.info("a callback stopped the run after step %d", step)
                break
            if progress is not None:
                progress.update(1)
                held_out = self.last_eval.accuracy if self.last_eval is not None else None
                progress.set_postfix(progress_postfix(config.stage_at(step).name, metrics, held_out))
        if progress is not None:
            progress.close()
        return self._finish(time.perf_counter() - started)

    def _train_step(self, step: int) -> dict[str, float]:
        config = self.config
        stage = config.stage_at(step)
        algorithm = self._algorithm(stage)
        lr = self._lr(step - stage.start, stage.length, stage.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if algorithm.needs_reference_model and self.reference is None:
            self.reference = self.policy.frozen_copy()

        worker = self._worker(stage)
        t0 = time.perf_counter()
        trajectories, selection_metrics = self._collect_until_full(step, algorithm)
        rollout_seconds = time.perf_counter() - t0
        _check_finite("reward", [t.reward for t in trajectories], step)
        prepared = algorithm.prepare(trajectories)
        metrics: dict[str, float] = {
            **trajectory_metrics(trajectories),
            **prepared.metrics,
            **selection_metrics,
            "train/stage": float(stage.name == "cold_start"),
            "train/lr": lr,
        }
        t1 = time.perf_counter()
        metrics.update(self._update(algorithm, prepared.trajectories, prepared.advantages, step))
        metrics["time/rollout_s"] = rollout_seconds
        metrics["time/update_s"] = time.perf_counter() - t1
        metrics["time/prepare_s"] = t1 - t0 - rollout_seconds
        metrics["time/generate_s"] = worker.times.generate
        metrics["time/env_s"] = worker.times.env
        metrics["time/tokenize_s"] = worker.times.tokenize
        metrics["time/rollout_outside_model_share"] = worker.times.outside_model_share
        # everything but model forward/backward/generate: env, parsing, scoring, tokenising, collation, advantages
        outside = (
            worker.times.env + worker.times.tokenize + metrics.get("time/collate_s", 0.0) + metrics["time/prepare_s"]
        )
        metrics["time/step_outside_model_share"] = outside / max(time.perf_counter() - t0, 1e-9)
        tokens = sum(len(t.input_ids) for t in prepared.trajectories)
        metrics["train/sequences"] = float(len(prepared.trajectories))
        metrics["train/tokens_per_s"] = tokens / max(metrics["time/update_s"], 1e-9)
        return self._reduce(metrics)

    def collect(self, step: int, sampling_round: int = 0) -> list[Trajectory]:
        """The rollouts of global step ``step`` (this process's share), exactly as training draws them.

        Questions, reset seeds and the sampling seed are functions of ``(seed, step, rank)``, so calling
        it again for the same step with the same weights gives the same batch. ``sampling_round`` > 0
        draws the further questions of a step whose algorithm refills dropped groups (DAPO's dynamic
        sampling); their group ids follow those of the earlier rounds.
        """
        stage = self.config.stage_at(step)
        algorithm, worker = self._algorithm(stage), self._worker(stage)
        config = self.config
        per_step = config.rollout.questions_per_step
        rng = np.random.default_rng([config.seed, step] + ([sampling_round] if sampling_round else []))
        questions = rng.integers(worker.dataset_size, size=per_step)
        mine = questions[self.rank :: self.world]
        torch.manual_seed(config.seed * 1_000_003 + step * 1_009 + self.rank + sampling_round * 7_919)
        self.policy.eval()
        # the scripted expert is deterministic: one trajectory per question (copies are identical sequences)
        group_size = 1 if algorithm.rollout_source == "oracle" else config.rollout.group_size
        return worker.run(
            self.policy,
            mine.tolist(),
            group_size,
            seed=config.seed * 10_000_019 + (step + sampling_round * 100_003) * per_step + self.rank * len(mine),
            actor=algorithm.rollout_source,
            first_group_id=sampling_round * per_step + self.rank * len(mine),
        )

    def _collect_until_full(self, step: int, algorithm: Algorithm) -> tuple[list[Trajectory], dict[str, float]]:
        """The step's rollouts; with dynamic sampling, more rounds until enough groups survive the filter.

        An algorithm whose ``max_sampling_rounds`` is above 1 (DAPO's dynamic sampling) drops groups in
        ``select_groups``; the trainer then draws further questions until this process holds its share
        of ``rollout.questions_per_step`` kept groups or the rounds run out, and keeps the first
        ``questions_per_step`` kept groups (DAPO, arXiv 2503.14476 §3.2: over-sample and filter).
        """
        trajectories = self.collect(step)
        rounds = algorithm.max_sampling_rounds
        if rounds <= 1:
            return trajectories, {}
        target = self.config.rollout.questions_per_step // self.world
        offered = dropped = 0
        kept: list[Trajectory] = []
        for sampling_round in range(rounds):
            if sampling_round:
                trajectories = self.collect(step, sampling_round)
            selection = algorithm.select_groups(trajectories)
            offered, dropped = offered + selection.num_groups, dropped + selection.num_dropped_groups
            kept.extend(selection)
            if len({t.group_id for t in kept}) >= target:
                break
        keep_ids = list(dict.fromkeys(t.group_id for t in kept))[:target]
        kept = [t for t in kept if t.group_id in set(keep_ids)]
        if len(keep_ids) < target:
            logger.warning(
                "step %d: dynamic sampling kept %d of %d groups after %d rounds; training on those",
                step,
                len(keep_ids),
                target,
                sampling_round + 1,
            )
        return kept, {
            "rollout/sampling_rounds": float(sampling_round + 1),
            "rollout/groups_offered": float(offered),
            "rollout/groups_dropped_total": float(dropped),
            "rollout/groups_kept": float(len(keep_ids)),
        }

    def _update(
        self, algorithm: Algorithm, trajectories: list[Trajectory], advantages: torch.Tensor, step: int
    ) -> dict[str, float]:
        """``minibatches`` optimizer steps over whole question groups, ``epochs`` times, in bounded memory."""
        optim = self.config.optim
        kept = self.accelerator.gather(torch.tensor([len(trajectories)], device=self.accelerator.device))
        if int(kept.min()) == 0:  # some process has nothing left (e.g. every group filtered): skip together
            return {"train/skipped": 1.0}
        self.policy.train()
        minibatches = _split_groups(trajectories, advantages, optim.minibatches)
        totals: dict[str, list[float]] = {}
        for _ in range(optim.epochs):
            for mb_trajectories, mb_advantages in minibatches:
                self.optimizer.zero_grad(set_to_none=True)
                metrics = self.accumulate_gradients(algorithm, mb_trajectories, mb_advantages, step)
                grad_norm = self.accelerator.clip_grad_norm_(self.policy.trainable_parameters(), optim.max_grad_norm)
                _check_finite("gradient norm", [float(grad_norm)], step)
                metrics["train/grad_norm"] = float(grad_norm)
                for key, value in metrics.items():
                    totals.setdefault(key, []).append(value)
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        reduced = {key: sum(v) / len(v) for key, v in totals.items()}
        reduced["time/collate_s"] = sum(totals["time/collate_s"])
        reduced["train/micro_batch_tokens_max"] = max(totals["train/micro_batch_tokens_max"])
        return reduced

    def accumulate_gradients(
        self, algorithm: Algorithm, trajectories: list[Trajectory], advantages: torch.Tensor, step: int = 0
    ) -> dict[str, float]:
        """Add the gradient of one minibatch's loss to the parameters' ``.grad`` (no optimizer step).

        The minibatch runs in micro-batches of at most ``optim.max_tokens_per_micro_batch`` padded tokens
        (image tokens included; :func:`~mapo_agent.memory.pack_by_tokens`, question groups kept whole
        when they fit). Every micro-batch's loss divides by the counts of the whole minibatch, summed
        over processes (:class:`~mapo_agent.types.LossNormalizer`); the trainer backpropagates each, times
        the number of processes since DDP averages gradients: the accumulated gradient is the unsplit
        minibatch's, whatever the budget. The reference model's pass uses the same micro-batches.

        Args:
            algorithm: The stage's algorithm.
            trajectories: The minibatch (this process's share), whole question groups.
            advantages: (B,) their advantages.
            step: Global step (for error messages).

        Returns:
            The minibatch's ``train/*`` metrics (see :func:`_combine_metrics`), ``time/collate_s``,
            ``train/micro_batches`` and ``train/micro_batch_tokens_max`` (largest padded micro-batch).

        Raises:
            TrainingDiverged: A micro-batch's loss is NaN or inf.
        """
        plan = self._micro_batches(algorithm, trajectories)
        normalizer, collate_seconds = self._normalizer(algorithm, trajectories, plan)
        parts: list[tuple[float, dict[str, float]]] = []
        sizes: list[int] = []
        for i, rows in enumerate(plan):
            t0 = time.perf_counter()
            batch = algorithm.training_batch(self.policy, [trajectories[r] for r in rows], advantages[rows])
            collate_seconds += time.perf_counter() - t0
            batch.normalizer = normalizer
            sizes.append(int(batch.input_ids.numel()))
            if algorithm.needs_reference_model:
                with torch.no_grad():
                    batch.ref_logprobs = self.reference.forward(batch).logprobs.detach()
            sync = i + 1 == len(plan)
            with self.accelerator.no_sync(self.policy.training_model) if not sync else nullcontext():
                loss, loss_metrics = algorithm.loss(self.policy, batch)
                _check_finite("loss", [float(loss.detach())], step)
                self.accelerator.backward(loss * self.world)
            parts.append((float(batch.loss_mask.sum()), loss_metrics))
            del batch, loss
        return {
            **_combine_metrics(parts, algorithm.summed_metrics, self.world),
            "time/collate_s": collate_seconds,
            "train/micro_batches": float(len(plan)),
            "train/micro_batch_tokens_max": float(max(sizes)),
        }

    def _micro_batches(self, algorithm: Algorithm, trajectories: list[Trajectory]) -> list[list[int]]:
        """Row indices of each micro-batch of a minibatch.

        ``optim.micro_batches`` parts of whole groups, each packed by the token budget (a group is split
        only when it alone exceeds the budget, and never for an algorithm that ``needs_whole_groups``).
        """
        optim = self.config.optim
        plan: list[list[int]] = []
        for rows in _group_parts(trajectories, optim.micro_batches):
            chunks = pack_by_tokens(
                [len(trajectories[r].input_ids) for r in rows],
                optim.max_tokens_per_micro_batch,
                [trajectories[r].group_id for r in rows],
                split_groups=not algorithm.needs_whole_groups,
            )
            plan += [[rows[j] for j in chunk] for chunk in chunks]
        return plan

    def _normalizer(
        self, algorithm: Algorithm, trajectories: list[Trajectory], plan: list[list[int]]
    ) -> tuple[LossNormalizer, float]:
        """The minibatch's loss denominators, summed over processes, and the seconds spent collating for them."""
        masks = [t.loss_mask for t in trajectories]
        names = tuple(algorithm.loss_count_names)
        extra = dict.fromkeys(names, 0.0)
        seconds = 0.0
        if names:  # the algorithm counts on collated batches (e.g. grounding targets): one more collation
            for rows in plan:
                t0 = time.perf_counter()
                batch = self.policy.collate([trajectories[r] for r in rows])
                seconds += time.perf_counter() - t0
                counts = algorithm.loss_counts(self.policy, batch)
                for name in names:
                    extra[name] += float(counts.get(name, 0.0))
        local = [float(sum(sum(m) for m in masks)), float(sum(1 for m in masks if any(m))), float(len(masks))]
        values = torch.tensor(local + list(extra.values()), dtype=torch.float64, device=self.accelerator.device)
        if self.world > 1:
            values = self.accelerator.reduce(values, reduction="sum")
        total = [float(v) for v in values.cpu()]
        normalizer = LossNormalizer(
            tokens=total[0], sequences_with_tokens=total[1], sequences=total[2], extra=dict(zip(names, total[3:]))
        )
        return normalizer, seconds

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, num_questions: int | None = None) -> EvalReport:
        """Greedy held-out evaluation (``env.eval_kwargs``, default the test split) of the current policy."""
        n = num_questions or self.config.eval_episodes
        self.policy.eval()
        questions = list(range(n))[self.rank :: self.world]
        report = evaluate(
            self.policy,
            self.config.env.id,
            self.eval_worker.env_kwargs,
            questions=questions,
            seed=self.config.seed + 1,
            worker=self.eval_worker,
        )
        if self.world > 1:  # every process reports on all the episodes
            from accelerate.utils import gather_object

            episodes = gather_object([_light(t) for t in report.trajectories])
            report = summarize(report.env_id, episodes, report.k, report.settings)
        self.last_eval = report
        return report

    def _evaluate(self) -> EvalReport:
        report = self.evaluate()
        report.metrics = {**report.metrics, "eval/accuracy": report.accuracy}
        return report

    def close(self) -> None:
        """Release the process group of a multi-process run (a no-op in one process).

        Call it once, after the last :meth:`train` / :meth:`evaluate`: a process that exits with its
        gloo/NCCL group alive can abort in the group's threads at interpreter shutdown
        ("terminate called without an active exception"), failing an otherwise finished run.
        """
        if self.world > 1:
            self.accelerator.end_training()

    # ---------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, step: int) -> Path:
        """Save everything needed to continue after ``step`` exactly."""
        folder = ckpt.checkpoint_dir(self.run_dir, step)
        self.accelerator.wait_for_everyone()
        accelerate_logger = logging.getLogger("accelerate")
        level = accelerate_logger.level
        accelerate_logger.setLevel(logging.ERROR)  # it warns that tied embeddings are saved once: expected
        try:
            self.accelerator.save_state(str(folder))
        finally:
            accelerate_logger.setLevel(level)
        if self.accelerator.is_main_process:
            if self.reference is not None:
                from safetensors.torch import save_model

                (folder / "reference").mkdir(exist_ok=True)  # the module's own names: reloaded strictly
                save_model(self.reference.base_model, str(folder / "reference" / REFERENCE_WEIGHTS))
            ckpt.write_state(folder, {"step": step, "config": self.config.to_dict()})
            ckpt.prune(self.run_dir, self.config.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return folder

    def _resume(self) -> int:
        folder = ckpt.latest_checkpoint(self.run_dir)
        if folder is None:
            logger.warning("resume requested but %s has no complete checkpoint; starting from scratch", self.run_dir)
            return 0
        self.accelerator.load_state(str(folder))
        state = ckpt.read_state(folder)
        if (folder / "reference").is_dir():
            from safetensors.torch import load_model

            self.reference = self.policy.frozen_copy()
            load_model(self.reference.base_model, str(folder / "reference" / REFERENCE_WEIGHTS), strict=True)
        if self.metrics is not None:
            self.metrics.truncate_after(state["step"])
        logger.info("resumed from %s (step %d)", folder, state["step"])
        return int(state["step"]) + 1

    # ----------------------------------------------------------------------------------- internals
    def _algorithm(self, stage: Stage) -> Algorithm:
        if stage.name not in self.algorithms:
            algorithm = make_algorithm(stage.algo, **stage.algo_kwargs)
            max_turns = int(getattr(self._worker(stage).envs_sample().unwrapped, "max_turns", 1))
            algorithm.bind(RunContext(max_new_tokens=self.config.rollout.max_new_tokens, max_turns=max_turns))
            self.algorithms[stage.name] = algorithm
        return self.algorithms[stage.name]

    def _worker(self, stage: Stage) -> RolloutWorker:
        if stage.name not in self.workers:
            for name in list(self.workers):  # stages run in order: free an earlier stage's envs and their scenes
                self.workers.pop(name).close()
            self.workers[stage.name] = RolloutWorker(
                self.config.env.id,
                stage.env_kwargs,
                max_concurrent_questions=self.config.rollout.max_concurrent_questions,
            )
        return self.workers[stage.name]

    def _lr(self, step_in_stage: int, stage_length: int, peak: float) -> float:
        optim = self.config.optim
        warmup = min(optim.warmup_steps, max(stage_length - 1, 0))
        if step_in_stage < warmup:
            return peak * (step_in_stage + 1) / (warmup + 1)
        if optim.schedule == "constant" or stage_length <= warmup + 1:
            return peak
        progress = (step_in_stage - warmup) / (stage_length - warmup - 1)
        return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        """Mean of each metric over processes (NaN-aware); identity on one process."""
        if self.world == 1:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        gathered = self.accelerator.gather(values[None]).reshape(self.world, len(keys)).cpu()
        return {k: float(torch.nanmean(gathered[:, i])) for i, k in enumerate(keys)}

    def _progress(self, start_step: int) -> Any:
        if not (self.config.progress_bar and self.accelerator.is_main_process):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.total_steps, initial=start_step, desc="mapo-train", unit="step")

    def weight_fingerprints(self) -> list[float]:
        """A fingerprint of the trainable weights on every process (DDP keeps them identical)."""
        with torch.no_grad():
            params = self.policy.trainable_parameters()
            local = sum(float(p.double().sum()) + float(p.double().pow(2).sum()) for p in params)
        value = torch.tensor([local], dtype=torch.float64, device=self.accelerator.device)
        return [float(v) for v in self.accelerator.gather(value).cpu()]

    def _memory_report(self) -> dict[str, Any]:
        """The memory budgets of the run and the peak resident memory (max over processes), also logged."""
        peak = torch.tensor([float(peak_rss_bytes())], dtype=torch.float64, device=self.accelerator.device)
        peak_mb = float(self.accelerator.gather(peak).max()) / 2**20
        report: dict[str, Any] = {
            "max_tokens_per_micro_batch": self.config.optim.max_tokens_per_micro_batch,
            "max_tokens_per_generation": self.config.rollout.max_tokens_per_generation,
            "gradient_checkpointing": self.config.model.gradient_checkpointing,
            "peak_rss_mb": round(peak_mb, 1),
        }
        if torch.cuda.is_available() and self.accelerator.device.type == "cuda":
            report["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(self.accelerator.device) / 2**20, 1)
        if self.accelerator.is_main_process:
            logger.info(
                "memory: micro-batches of <= %d tokens, generation chunks of <= %d tokens; peak RSS %.0f MB",
                report["max_tokens_per_micro_batch"],
                report["max_tokens_per_generation"],
                peak_mb,
            )
        return report

    def _finish(self, seconds: float) -> dict[str, Any]:
        summary: dict[str, Any] = {"steps": self.config.total_steps, "train_seconds": seconds}
        if self.should_stop:
            summary["stopped_after_step"] = self.step
        summary["processes"] = self.world
        summary["process_index"] = self.rank
        summary["weight_fingerprints"] = self.weight_fingerprints()
        summary.update(self._memory_report())
        if self.last_eval is not None:
            summary.update(self.last_eval.to_dict())
        if self.accelerator.is_main_process:
            self.policy.save_pretrained(self.run_dir / "final", merge_lora=True)  # loadable like any checkpoint
            from mapo_agent.plots import plot_run

            plot_run(self.run_dir)
            if self.last_eval is not None:
                self.last_eval.save(self.run_dir, "eval")
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
            if self.metrics is not None:
                self.metrics.close()
        self.accelerator.wait_for_everyone()
        return summary


def _group_parts(trajectories: list[Trajectory], parts: int) -> list[list[int]]:
    """Row indices of ``parts`` chunks of whole question groups (order kept)."""
    order: list[int] = []
    for t in trajectories:
        if t.group_id not in order:
            order.append(t.group_id)
    parts = max(1, min(parts, len(order)))
    chunks = []
    for part in np.array_split(np.array(order), parts):
        ids = set(part.tolist())
        chunks.append([i for i, t in enumerate(trajectories) if t.group_id in ids])
    return chunks


def _split_groups(
    trajectories: list[Trajectory], advantages: torch.Tensor, parts: int
) -> list[tuple[list[Trajectory], torch.Tensor]]:
    """Split into ``parts`` chunks of whole question groups (order kept)."""
    return [([trajectories[i] for i in rows], advantages[rows]) for rows in _group_parts(trajectories, parts)]


def _combine_metrics(
    parts: list[tuple[float, dict[str, float]]], summed: frozenset[str], world: int
) -> dict[str, float]:
    """A minibatch's metrics from its micro-batches' ``(loss tokens, metrics)``.

    A loss term (a name in ``summed`` or ending in ``_loss``) is the micro-batch's share of the
    minibatch's value: the shares are summed, times ``world`` (each process holds its share; the
    trainer averages metrics over processes). Any other metric is a mean over the micro-batch: the
    micro-batches' values are averaged, weighted by their loss tokens.
    """
    out: dict[str, float] = {}
    for key in dict.fromkeys(k for _, metrics in parts for k in metrics):
        values = [(weight, float(metrics[key])) for weight, metrics in parts if key in metrics]
        if key in summed or key.endswith("_loss"):
            out[key] = sum(v for _, v in values) * world
            continue
        weight = sum(w for w, _ in values)
        out[key] = sum(w * v for w, v in values) / weight if weight > 0 else sum(v for _, v in values) / len(values)
    return out


def _light(trajectory: Trajectory) -> Trajectory:
    """The trajectory without tokens and images (what metrics and reports read), cheap to gather."""
    return dataclasses.replace(
        trajectory, input_ids=[], old_logprobs=[], images=[], loss_mask=[1] * trajectory.num_generated_tokens
    )


def _check_finite(what: str, values: list[float], step: int) -> None:
    if not all(math.isfinite(v) for v in values):
        raise TrainingDiverged(
            f"step {step}: {what} is NaN or inf; stopped before the optimizer step, so the weights of the last "
            "checkpoint are intact. Lower the learning rate, enable gradient clipping (optim.max_grad_norm) or check "
            "the reward function; then rerun with --resume."
        )
