"""The big-model path: a Qwen2.5-VL-3B/7B-architecture model with random weights, rollouts and RL steps.

Builds the real architecture from its published configuration (no download: random weights, the
bundled tokenizer's special-token ids), saves it like a hub folder, and runs the trainer on it the way
a user would (``mapo-train --model.name-or-path DIR --model.dtype bfloat16
--model.gradient-checkpointing``): MAPO on ``MAPO-VStar-v0`` (448-px views and crops, real multi-turn
episodes: a random model never answers, so every episode runs all its turns at the full token budget).

Prints, per RL step, generation tokens/s (all new tokens of the step over the time spent in
``generate``), the update time, training tokens/s, peak accelerator memory, and the model FLOPs
utilisation of the update (``6 * parameters * tokens / seconds`` over ``--peak-tflops``; with LoRA the
forward and backward still run through every weight, so the same count is used).

Usage::

    python benchmarks/big_model.py --arch 3b                       # on a GPU: the real size, bf16
    python benchmarks/big_model.py --arch 7b --lora-rank 64
    python benchmarks/big_model.py --arch 3b --layers 2 --steps 1  # CPU smoke test: real widths, 2 layers

``--layers N`` keeps every width of the architecture and cuts the text and vision depth to ``N``
(a check of shapes, dtypes and gradient checkpointing that fits a laptop).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

# Published architecture of the Qwen2.5-VL-Instruct checkpoints (config.json of the hub folders).
ARCHS = {
    "3b": {
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "vision_out_hidden_size": 2048,
    },
    "7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "tie_word_embeddings": False,
        "vision_out_hidden_size": 3584,
    },
}
VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
}
SPECIAL_TOKENS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
    "eos_token_id": "<|im_end|>",
    "bos_token_id": "<|endoftext|>",
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense bf16


def build_checkpoint(arch: str, layers: int | None, out: Path) -> int:
    """Write a random-weight checkpoint of ``arch`` to ``out``; returns its parameter count."""
    from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from mapo_agent.policy.tiny import bundled_model_path

    bundled = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(bundled)
    spec = dict(ARCHS[arch])
    vision = dict(VISION, out_hidden_size=spec.pop("vision_out_hidden_size"))
    if layers is not None:
        spec["num_hidden_layers"] = layers
        vision["depth"], vision["fullatt_block_indexes"] = layers, [layers - 1]
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    half = spec["hidden_size"] // spec["num_attention_heads"] // 2  # M-RoPE splits half the head dim: t, h, w
    config = Qwen2_5_VLConfig(
        text_config={
            **spec,
            **ids,
            "vocab_size": 151936,
            "rope_theta": 1_000_000.0,
            "max_position_embeddings": 128000,
            "rope_scaling": {"type": "mrope", "mrope_section": [half // 4, 3 * half // 8, 3 * half // 8]},
        },
        vision_config=vision,
        **ids,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    count = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    for f in bundled.iterdir():  # tokenizer, processor and chat template of the bundled agent
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, out / f.name)
    return count


def peak_tflops(requested: float | None) -> float | None:
    """Dense bf16 peak of this accelerator (``--peak-tflops`` or a known GPU name), None on CPU."""
    if requested:
        return requested
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="3b")
    parser.add_argument("--layers", type=int, help="cut text and vision depth to N (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=3, help="RL steps")
    parser.add_argument("--questions", type=int, default=4, help="questions per step")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128, help="token budget of one turn")
    parser.add_argument("--lora-rank", type=int, default=0, help="0 = full fine-tuning")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--attn", default="sdpa", help="sdpa or flash_attention_2")
    parser.add_argument("--peak-tflops", type=float, help="accelerator peak for MFU (default: known GPU names)")
    args = parser.parse_args()

    from mapo_agent.config import EnvConfig, ModelConfig, OptimConfig, RolloutConfig, TrainConfig
    from mapo_agent.metrics import read_metrics
    from mapo_agent.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        params = build_checkpoint(args.arch, args.layers, Path(tmp) / "model")
        built = time.perf_counter() - started
        config = TrainConfig(
            algo="mapo",
            steps=args.steps,
            sft_steps=0,
            output_dir=str(Path(tmp) / "run"),
            eval_every=0,
            eval_episodes=args.questions,
            save_every=0,
            progress_bar=False,
            model=ModelConfig(
                name_or_path=str(Path(tmp) / "model"),
                dtype="bfloat16",
                attn_implementation=args.attn,
                gradient_checkpointing=not args.no_gradient_checkpointing,
                lora_rank=args.lora_rank,
            ),
            env=EnvConfig(
                id="MAPO-VStar-v0",
                kwargs={"alignment": "lexical", "max_pixels": 448 * 448, "crop_max_pixels": 448 * 448, "max_turns": 3},
            ),
            rollout=RolloutConfig(
                questions_per_step=args.questions, group_size=args.group_size, max_new_tokens=args.max_new_tokens
            ),
            optim=replace(OptimConfig(), warmup_steps=0),
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        Trainer(config).train()
        rows = [r for r in read_metrics(Path(config.output_dir) / "metrics.jsonl") if "time/update_s" in r]
    peak = peak_tflops(args.peak_tflops)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    depth = f" ({args.layers} layers)" if args.layers else ""
    print(
        f"arch {args.arch}{depth}: {params / 1e9:.2f} B parameters, bf16, gradient checkpointing "
        f"{not args.no_gradient_checkpointing}, LoRA rank {args.lora_rank}, device {device}; built in {built:.0f} s"
    )
    print(f"{'step':>4} {'gen tok/s':>10} {'update s':>9} {'train tok/s':>12} {'MFU':>6}")
    episodes = args.questions * args.group_size
    generation = [r["rollout/response_tokens"] * episodes / max(r["time/generate_s"], 1e-9) for r in rows]
    for r, gen in zip(rows, generation):
        mfu = 6 * params * r["train/tokens_per_s"] / (peak * 1e12) if peak else float("nan")
        print(f"{r['step']:>4} {gen:>10.1f} {r['time/update_s']:>9.2f} {r['train/tokens_per_s']:>12.0f} {mfu:>6.1%}")
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    summary = {
        "generate_tokens_per_s": statistics.median(generation),
        "update_s": statistics.median(r["time/update_s"] for r in rows),
        "peak_gpu_gib": memory,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
