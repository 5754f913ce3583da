"""mapo-eval --endpoint against a local stub server, for the faults a real server will not produce on demand.

The happy path runs against a real vLLM server: tests/integrations/test_vllm.py (pytest -m vllm).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("openai")

from mapo_agent.cli import evaluate as cli  # noqa: E402
from mapo_agent.endpoint import (  # noqa: E402
    EndpointBudgetExhausted,
    EndpointClient,
    EndpointImagesRefusedError,
    EndpointPayloadError,
    EndpointPolicy,
    EndpointStatusError,
    EndpointTimeoutError,
    EndpointUnreachableError,
    chat_messages,
)
from mapo_env.errors import ConfigError  # noqa: E402

ANSWER = "<answer>A</answer>"


def completion(content: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


class Stub:
    """A chat-completions server whose answer to the n-th request (1-based) is ``script(n, body)``."""

    def __init__(self, script) -> None:
        self.script, self.bodies = script, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models
                self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                status, payload = stub.script(len(stub.bodies), body)
                self._send(status, payload)

            def _send(self, status: int, payload) -> None:
                if callable(payload):
                    payload = payload()
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    servers = []

    def start(script):
        servers.append(Stub(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(url: str, **kwargs) -> EndpointClient:
    return EndpointClient(url, "stub", **{"timeout": 5.0, "retries": 2, "backoff": 0.01, **kwargs})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MESSAGES = [{"role": "user", "content": "hi"}]


def test_retries_a_500_then_succeeds(stub):
    server = stub(lambda n, _: (500, {"error": {"message": "overloaded"}}) if n == 1 else (200, completion("ok")))
    c = client(server.url)
    assert c.complete(MESSAGES).text == "ok"
    assert (c.requests, c.retried) == (2, 1)


def test_persistent_500s_are_a_status_error_after_the_retries(stub):
    server = stub(lambda n, _: (500, {"error": {"message": "boom"}}))
    c = client(server.url)
    with pytest.raises(EndpointStatusError, match="HTTP 500") as caught:
        c.complete(MESSAGES)
    assert caught.value.attempts == 3 and len(server.bodies) == 3


def test_a_4xx_is_not_retried(stub):
    server = stub(lambda n, _: (404, {"error": {"message": "no such model"}}))
    with pytest.raises(EndpointStatusError, match="is 'stub' served"):
        client(server.url).complete(MESSAGES)
    assert len(server.bodies) == 1


def test_timeout(stub):
    def slow(n, _):
        return 200, lambda: (time.sleep(1.5), completion("late"))[1]

    server = stub(slow)
    with pytest.raises(EndpointTimeoutError, match="did not answer within 0.3 s"):
        client(server.url, timeout=0.3, retries=1).complete(MESSAGES)
    assert len(server.bodies) == 2


@pytest.mark.parametrize(
    "payload",
    [b"<html>502 from a proxy</html>", b'{"not": "a completion"}', b'{"choices": []}', b"{truncated"],
    ids=["html", "no-choices-key", "empty-choices", "truncated-json"],
)
def test_garbage_is_a_payload_error(stub, payload):
    server = stub(lambda n, _: (200, payload))
    with pytest.raises(EndpointPayloadError, match="not a chat completion"):
        client(server.url, retries=1).complete(MESSAGES)
    assert len(server.bodies) == 2  # retried once: a garbled answer may be transient


def test_refused_images_are_named_and_not_retried(stub):
    refusal = {"error": {"message": "Qwen2ForCausalLM is not a multimodal model", "type": "BadRequestError"}}
    server = stub(lambda n, _: (400, refusal))
    with pytest.raises(EndpointImagesRefusedError, match="refused a request with images"):
        client(server.url).complete(MESSAGES, has_images=True)
    assert len(server.bodies) == 1


def test_unreachable(stub):
    url = f"http://127.0.0.1:{free_port()}/v1"
    c = client(url, retries=1)
    with pytest.raises(EndpointUnreachableError, match="cannot connect"):
        c.served_models()
    with pytest.raises(EndpointUnreachableError, match=r"\(2 tries\)"):
        c.complete(MESSAGES)


def test_budget_counts_retries(stub):
    server = stub(lambda n, _: (503, {"error": {"message": "busy"}}))
    c = client(server.url, retries=5, max_requests=2)
    with pytest.raises(EndpointBudgetExhausted, match="2 requests sent"):
        c.complete(MESSAGES)
    assert len(server.bodies) == 2


def test_settings_are_checked_before_any_request():
    with pytest.raises(ConfigError, match="http"):
        EndpointClient("localhost:8000", "m")
    with pytest.raises(ConfigError, match="--timeout"):
        EndpointClient("http://127.0.0.1:1/v1", "m", timeout=0)
    with pytest.raises(ConfigError, match="--max-requests"):
        EndpointClient("http://127.0.0.1:1/v1", "m", max_requests=0)


def test_malformed_model_text_is_a_tool_error_not_an_exception(stub):
    """A garbled tool call is model output: the episode goes on with a tool message and an error code."""
    from mapo_agent.evaluation import evaluate

    garbled = '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2'

    def script(n, body):  # first turn: a garbled call; once the env has replied: an answer
        return 200, completion(ANSWER if len(body["messages"]) > 2 else garbled)

    server = stub(script)
    policy = EndpointPolicy(client(server.url), concurrency=2)
    report = evaluate(policy, "MAPO-Tiles-v0", {"split": "test"}, questions=[0, 1], k=1)
    policy.close()
    assert report.num_questions == 2
    assert all(t.tool_errors and t.num_turns == 2 for t in report.trajectories)
    first = server.bodies[0]
    second = next(b for b in server.bodies if len(b["messages"]) > 2)
    image = first["messages"][1]["content"][0]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert second["messages"][2]["role"] == "assistant" and second["messages"][3]["role"] == "user"


def test_openai_dialect_sends_tools_and_answers_calls_with_tool_messages(stub, tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "image_zoom_in_tool", "arguments": "{}"}}
    tool_turn = completion("")
    tool_turn["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    server = stub(lambda n, _: (200, tool_turn) if n == 1 else (200, completion("Answer: A")))
    config = cli.EvalConfig(
        endpoint=server.url, model="stub", dialect="openai", num_questions=1, concurrency=1, output_dir=str(tmp_path)
    )
    report = cli.run(config)
    assert report.num_questions == 1 and report.trajectories[0].num_turns == 2
    assert report.trajectories[0].tool_errors  # the call without arguments: a tool error, then the answer
    assert server.bodies[0]["tools"][0]["function"]["name"] == "image_zoom_in_tool"
    history = server.bodies[1]["messages"]
    assert history[2]["tool_calls"][0]["id"] == "c1"
    assert history[3]["role"] == "tool" and history[3]["tool_call_id"] == "c1"
    assert history[4]["role"] == "user"


def test_cli_keeps_partial_results_when_the_server_dies(stub, tmp_path, capsys):
    """Two rounds of requests answer, then only 500s: the first episodes are written, the report is INCOMPLETE."""
    server = stub(lambda n, _: (200, completion(ANSWER)) if n <= 2 else (500, {"error": {"message": "down"}}))
    argv = f"--endpoint {server.url} --model stub --num-questions 4 --concurrency 2 --retries 0 --max-new-tokens 8"
    code = cli.main([*argv.split(), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "EndpointStatusError" in err and "HTTP 500" in err
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["num_questions"] == 2 and "incomplete" in report["settings"]
    assert report["settings"]["endpoint"]["served_model"] == "stub"
    lines = (tmp_path / "eval.episodes.jsonl").read_text().splitlines()
    assert [json.loads(line)["sample_index"] for line in lines] == [0, 1]


def test_cli_misuse_is_refused_before_any_request(tmp_path, capsys, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cases = [
        (["--endpoint", url], "needs --model"),
        (["--endpoint", "127.0.0.1:8000", "--model", "m"], "http(s) URL"),
        (["--endpoint", url, "--model", "m", "--oracle"], "exclude each other"),
        (["--endpoint", url, "--model", "m", "--concurrency", "0"], "--concurrency"),
        (["--endpoint", url, "--model", "m", "--api-key-env", "NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, "--output-dir", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["--endpoint", url, "--model", "m", "--output-dir", str(tmp_path), "--retries", "0"]) == 2
    assert f"cannot connect to {url}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written: no episode finished


def test_chat_messages_place_images_in_order():
    import numpy as np

    from mapo_agent.endpoint import EndpointEpisode

    red, blue = np.zeros((4, 4, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "zoom"}]},
        {"role": "user", "content": [{"type": "text", "text": "crop:"}, {"type": "image"}]},
    ]
    out = chat_messages(EndpointEpisode(0, messages, [red, blue], replies=[None]))
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[1]["content"] == "zoom" and out[2]["content"][1]["type"] == "image_url"
    assert out[0]["content"][0]["image_url"]["url"] != out[2]["content"][1]["image_url"]["url"]
