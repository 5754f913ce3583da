"""Train a Qwen2.5-VL agent on a MAPO environment with TRL's GRPOTrainer (exact MAPO or its near form).

Needs the ``[trl]`` extra (``bash scripts/install_trl.sh``). By default it trains the bundled tiny
random-weight agent for a few steps on CPU, which shows the wiring (zoom tool, crops as images,
rewards, the MAPO advantage) rather than learning: an untrained model rarely writes a zoom call.
Point ``--model`` at a cold-started checkpoint (``mapo-train`` output) or a real Qwen2.5-VL to learn.

Usage::

    python examples/trl_grpo.py                                  # bundled model, MAPO-Tiles-v0, 4 steps, CPU
    python examples/trl_grpo.py --route near                     # TRL's own advantage, two reward functions
    python examples/trl_grpo.py --model Qwen/Qwen2.5-VL-3B-Instruct --env MAPO-VStar-v0 --steps 200 --gpu

``--route exact`` (default) trains with ``MapoGRPOTrainer`` (MAPO's advantage from our estimator);
``--route near`` with the stock ``GRPOTrainer``, ``reward_weights=[1, β]`` and
``multi_objective_aggregation="normalize_then_sum"`` (MAPO up to a batch rescale). Guide:
``docs/integrations.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL 1.x

import torch  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from mapo_agent.algorithms.advantages import AdvantageConfig  # noqa: E402
from mapo_agent.integrations.trl import MapoGRPOTrainer, load_processor  # noqa: E402
from mapo_agent.policy.tiny import bundled_model_path  # noqa: E402
from mapo_env.integrations.trl import MapoEnvFactory, make_dataset, outcome_reward, semantic_reward  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Qwen2.5-VL checkpoint (default: the bundled tiny agent)")
    parser.add_argument("--env", default="MAPO-Tiles-v0", help="a registered MAPO-* id")
    parser.add_argument("--route", choices=["exact", "near"], default="exact", help="MapoGRPOTrainer or GRPOTrainer")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps")
    parser.add_argument("--questions", type=int, default=32, help="dataset size")
    parser.add_argument("--prompts-per-step", type=int, default=2, help="questions per step")
    parser.add_argument("--num-generations", type=int, default=2, help="rollouts per question (G)")
    parser.add_argument("--max-completion-length", type=int, default=96, help="tokens per rollout, tools included")
    parser.add_argument("--semantic-coef", type=float, default=0.4, help="MAPO's β")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (default: CPU)")
    parser.add_argument("--output-dir", default=None, help="where TRL writes (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    model_path = args.model or str(bundled_model_path())
    processor = load_processor(model_path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_path, dtype=torch.float32)
    config = GRPOConfig(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="mapo-trl-"),
        use_cpu=not args.gpu,
        max_steps=args.steps,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        max_tool_calling_iterations=4,
        learning_rate=args.lr,
        reward_weights=[1.0, args.semantic_coef],
        multi_objective_aggregation="normalize_then_sum",  # the near form; MapoGRPOTrainer replaces the advantage
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
    )
    common = dict(
        model=model,
        processing_class=processor,
        reward_funcs=[outcome_reward, semantic_reward],
        args=config,
        train_dataset=make_dataset(args.env, num_questions=args.questions, seed=args.seed),
        environment_factory=MapoEnvFactory(args.env),
    )
    if args.route == "exact":
        trainer = MapoGRPOTrainer(**common, advantage_config=AdvantageConfig(semantic_coef=args.semantic_coef))
    else:
        trainer = GRPOTrainer(**common)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if "loss" in h]
    print(
        f"\n{args.route} route: {len(history)} steps in {seconds:.1f} s ({seconds / max(len(history), 1):.1f} s/step)"
    )
    for h in history:
        print(
            f"step {h['step']}: loss {h['loss']:.4f}  reward {h.get('reward', float('nan')):.3f}  "
            f"tool calls/rollout {h.get('tools/call_frequency', 0):.2f}"
        )


if __name__ == "__main__":
    main()
