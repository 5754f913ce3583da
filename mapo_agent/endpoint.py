"""Evaluate a model behind an OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted API) on any environment.

:class:`EndpointPolicy` is a :class:`~mapo_agent.rollout.RolloutPolicy` whose turns come from
``POST /v1/chat/completions`` (the official ``openai`` client, ``pip install mapo-gym[endpoint]``), so
:func:`mapo_agent.evaluation.evaluate` plays and reports an endpoint exactly as a local model: the same
questions, reset seeds, Avg@k and report. Each turn sends the whole dialogue of the episode as the
environment renders it, its images as PNG data URLs at the environment's resolution, and passes the
reply's text to ``env.step``: the environment's dialect parses it, so a malformed tool call is model
output (a tool message and an ``info["tool_error"]`` code), never an exception. With the ``openai``
dialect the zoom tool also travels as ``tools=`` and the reply's ``tool_calls`` are handed over as the
JSON the dialect reads.

Transport failures are named errors, raised after the retries (exponential backoff) are spent:
:class:`EndpointUnreachableError` (no connection), :class:`EndpointTimeoutError`,
:class:`EndpointImagesRefusedError` (a 4xx that names images: a text-only model; not retried),
:class:`EndpointPayloadError` (a body that is not a chat completion), :class:`EndpointStatusError`
(any other HTTP error) and :class:`EndpointBudgetExhausted` (``max_requests`` HTTP requests sent).
With ``evaluate(..., keep_partial=True)`` the finished episodes still make a report, and
``episodes_path`` gets one JSON line per finished episode as it finishes.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapo_agent.types import Trajectory
from mapo_env.errors import ConfigError, DependencyNotInstalled, MapoError

INSTALL_HINT = "pip install 'mapo-gym[endpoint]' (or: pip install openai)"
RETRIED_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try (rate limits, overload, gateway errors)."""
_IMAGE_WORDS = re.compile(r"image|multi-?modal|vision|visual", re.IGNORECASE)


class EndpointError(MapoError):
    """Base class of the endpoint's transport failures; ``attempts`` is the number of requests sent for the turn."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        self.attempts = attempts
        super().__init__(message)


class EndpointUnreachableError(EndpointError):
    """No connection to the endpoint (refused, unknown host, reset) after every retry."""


class EndpointTimeoutError(EndpointError):
    """The endpoint did not answer within the timeout, on every try."""


class EndpointImagesRefusedError(EndpointError):
    """The endpoint refused a request with images (a text-only model or server); not retried."""


class EndpointPayloadError(EndpointError):
    """The endpoint answered with something that is not a chat completion (not JSON, no choices, no message)."""


class EndpointStatusError(EndpointError):
    """The endpoint answered with an HTTP error (authentication, unknown model, server errors after retries)."""


class EndpointBudgetExhausted(EndpointError):
    """The request budget (``max_requests``) is spent."""


def require_openai() -> Any:
    """The ``openai`` module, or :class:`~mapo_env.errors.DependencyNotInstalled` with the install line."""
    try:
        import openai
    except ImportError as error:
        raise DependencyNotInstalled(f"evaluating an endpoint needs the openai client: {INSTALL_HINT}") from error
    return openai


def check_url(url: str) -> str:
    """``url`` stripped of a trailing ``/``, checked to be ``http(s)://host...`` (a :class:`ConfigError` if not)."""
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url.strip()):
        raise ConfigError(f"the endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    return url.strip().rstrip("/")


def image_data_url(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) image as a lossless ``data:image/png;base64,...`` URL, at its own resolution."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Completion:
    """One checked chat completion.

    Attributes:
        text: What goes to ``env.step``: the message's content, or with ``tool_calls`` the message as JSON.
        message: The assistant message to send back in the history (``content`` and any ``tool_calls``).
        finish_reason: ``"stop"``, ``"length"``, ``"tool_calls"``, ... (``None`` if not given).
        prompt_tokens: The endpoint's count (0 when it gives no usage).
        completion_tokens: The endpoint's count (0 when it gives no usage).
    """

    text: str
    message: dict[str, Any]
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EndpointClient:
    """Chat completions with retries, exponential backoff and a request budget, thread-safe.

    Args:
        base_url: The OpenAI-compatible base URL (``http://host:port/v1``).
        model: The served model name.
        api_key: The key (``"EMPTY"`` for servers without one).
        timeout: Seconds one request may take.
        retries: Extra tries after a retryable failure (connection, timeout, 408/409/429/5xx, malformed body).
        backoff: First wait in seconds; doubled after each failed try (with up to 10% jitter), capped at 30 s.
        max_requests: Budget of HTTP requests over the client's life, retries included; None = unlimited.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_requests: int | None = None,
    ) -> None:
        check_settings(timeout=timeout, retries=retries, backoff=backoff, max_requests=max_requests)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"the served model name must be a non-empty string, got {model!r}")
        openai = require_openai()
        self.base_url, self.model = check_url(base_url), model
        self.timeout, self.retries, self.backoff, self.max_requests = timeout, retries, backoff, max_requests
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._lock = threading.Lock()
        self.requests = 0
        """HTTP requests sent so far (retries included)."""
        self.retried = 0
        """Requests that failed and were tried again."""

    def served_models(self) -> list[str] | None:
        """Model names of ``GET /models`` (one try, outside the budget), or None when the endpoint lists none.

        Raises:
            EndpointUnreachableError: No connection.
            EndpointTimeoutError: No answer within the timeout.
        """
        try:
            listing = self._client.models.list()
            return [str(m.id) for m in listing.data]
        except self._openai.APITimeoutError as error:
            message = f"{self.base_url}/models did not answer within {self.timeout:g} s"
            raise EndpointTimeoutError(message, 1) from error
        except self._openai.APIConnectionError as error:
            raise EndpointUnreachableError(f"cannot connect to {self.base_url}: {_cause(error)}", 1) from error
        except (self._openai.APIError, AttributeError, TypeError, ValueError):
            return None

    def complete(self, messages: list[dict[str, Any]], *, has_images: bool = True, **params: Any) -> Completion:
        """One chat completion of ``messages`` (``params``: ``temperature``, ``max_tokens``, ``seed``, ``tools``).

        Raises:
            EndpointError: One of its subclasses, once the retries are spent (see the module docstring).
        """
        delay = self.backoff
        for attempt in range(1, self.retries + 2):
            self._take_request(attempt)
            try:
                raw = self._client.chat.completions.create(model=self.model, messages=messages, **params)
                return _check_completion(raw, attempt)
            except EndpointPayloadError as error:
                failure: EndpointError = error
            except self._openai.APITimeoutError as error:
                failure = EndpointTimeoutError(
                    f"{self.base_url} did not answer within {self.timeout:g} s ({attempt} tries)", attempt
                )
                failure.__cause__ = error
            except self._openai.APIConnectionError as error:
                failure = EndpointUnreachableError(
                    f"cannot connect to {self.base_url} ({attempt} tries): {_cause(error)}", attempt
                )
                failure.__cause__ = error
            except self._openai.APIStatusError as error:
                failure = _status_error(error, self.base_url, self.model, attempt, has_images)
                if error.status_code not in RETRIED_STATUS:
                    raise failure from error
            except self._openai.APIResponseValidationError as error:
                failure = EndpointPayloadError(f"{self.base_url} answered a malformed completion: {error}", attempt)
            except (ValueError, TypeError) as error:  # a body the client could not decode
                failure = EndpointPayloadError(
                    f"{self.base_url} answered a body that is not a chat completion: {type(error).__name__}: {error}",
                    attempt,
                )
            if attempt > self.retries:
                raise failure
            with self._lock:
                self.retried += 1
            time.sleep(min(delay, 30.0) * (1 + 0.1 * random.random()))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_request(self, attempt: int = 1) -> None:
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                raise EndpointBudgetExhausted(
                    f"the request budget is spent ({self.max_requests} requests sent, retries included); "
                    "raise --max-requests to evaluate more",
                    attempt - 1,
                )
            self.requests += 1


def check_settings(
    *, timeout: float, retries: int, backoff: float = 1.0, max_requests: int | None, concurrency: int = 1
) -> None:
    """Refuse out-of-range client settings with a :class:`ConfigError` naming the flag."""
    for name, value in (("timeout", timeout), ("backoff", backoff)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(f"--{name} must be a number of seconds > 0, got {value!r}")
    for name, value, low in (("retries", retries, 0), ("concurrency", concurrency, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"--{name} must be an integer >= {low}, got {value!r}")
    budget_ok = isinstance(max_requests, int) and not isinstance(max_requests, bool) and max_requests >= 1
    if max_requests is not None and not budget_ok:
        raise ConfigError(f"--max-requests must be an integer >= 1 or unset (no budget), got {max_requests!r}")


def _cause(error: BaseException) -> str:
    inner = error.__cause__ or error.__context__
    return f"{type(inner).__name__}: {inner}" if inner is not None else str(error)


def _status_error(error: Any, url: str, model: str, attempt: int, has_images: bool) -> EndpointError:
    status = int(error.status_code)
    body = error.message if isinstance(getattr(error, "message", None), str) else str(error)
    body = " ".join(body.split())[:300]
    if has_images and status in (400, 415, 422) and _IMAGE_WORDS.search(body):
        return EndpointImagesRefusedError(
            f"{url} refused a request with images (HTTP {status}: {body}); serve a vision-language model "
            f"(is {model!r} multimodal?)",
            attempt,
        )
    key = " (check the API key variable)"
    hint = {401: key, 403: key, 404: f" (is {model!r} served?)"}
    return EndpointStatusError(f"{url} answered HTTP {status}{hint.get(status, '')}: {body}", attempt)


def _check_completion(raw: Any, attempt: int) -> Completion:
    """The completion's first choice as a :class:`Completion`, or :class:`EndpointPayloadError`."""

    def bad(why: str) -> EndpointPayloadError:
        shown = raw if isinstance(raw, str) else type(raw).__name__
        message = f"the endpoint's answer is not a chat completion ({why}): {str(shown)[:200]!r}"
        return EndpointPayloadError(message, attempt)

    choices = getattr(raw, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise bad("no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise bad("no message in the first choice")
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise bad("content is not a string")
    calls = []
    for i, call in enumerate(getattr(message, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise bad("a tool call without a function name and arguments string")
        calls.append(
            {
                "id": getattr(call, "id", None) or f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    if not content and not calls:
        content = getattr(message, "refusal", None) or ""  # an empty or refused turn is model output
    assistant: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        assistant["tool_calls"] = calls
    text = json.dumps(assistant, ensure_ascii=False) if calls else str(content)
    usage = getattr(raw, "usage", None)
    return Completion(
        text=text,
        message=assistant,
        finish_reason=getattr(choices[0], "finish_reason", None),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


@dataclass
class EndpointEpisode:
    """One live episode on the endpoint side.

    Attributes:
        number: Order of the episode among those the policy started (seeds its sampling).
        messages: The environment's dialogue so far (its ``messages``).
        images: The environment's images so far, in placeholder order.
        replies: The endpoint's assistant message of each turn (``None`` for a forced turn).
        turn_texts: The text handed to ``env.step`` each turn.
        finish_reasons: The endpoint's ``finish_reason`` of each turn.
        prompt_tokens: Summed over the turns (the endpoint's usage).
        completion_tokens: Summed over the turns (the endpoint's usage).
    """

    number: int
    messages: list[dict[str, Any]]
    images: list[np.ndarray]
    replies: list[dict[str, Any] | None] = field(default_factory=list)
    turn_texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EndpointPolicy:
    """A :class:`~mapo_agent.rollout.RolloutPolicy` answered by an OpenAI-compatible endpoint.

    Args:
        client: The :class:`EndpointClient`.
        concurrency: Requests in flight at once (the live episodes of a round are sent in parallel).
        temperature: Sampling temperature when the evaluation samples (``do_sample=True``); greedy sends 0.
        max_new_tokens: ``max_tokens`` of one turn.
        seed: Base of the per-request ``seed`` (episode number and turn added), for endpoints that honour it.
        tools: ``tools=`` sent with every request (the ``openai`` dialect's zoom schema), or None.
        episodes_path: A JSON-lines file that gets one line per finished episode, as it finishes.
    """

    def __init__(
        self,
        client: EndpointClient,
        *,
        concurrency: int = 8,
        temperature: float = 1.0,
        max_new_tokens: int = 256,
        seed: int = 0,
        tools: list[dict[str, Any]] | None = None,
        episodes_path: str | Path | None = None,
    ) -> None:
        check_settings(
            timeout=client.timeout, retries=client.retries, max_requests=client.max_requests, concurrency=concurrency
        )
        self.client, self.concurrency = client, concurrency
        self.temperature, self.max_new_tokens, self.seed, self.tools = temperature, max_new_tokens, seed, tools
        self.episodes_path = None if episodes_path is None else Path(episodes_path)
        self._started = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mapo-endpoint")

    def start_episode(self, obs: dict[str, Any]) -> EndpointEpisode:
        """Episode state from the first observation."""
        self._started += 1
        return EndpointEpisode(self._started - 1, list(obs["messages"]), list(obs["images"]))

    def generate(self, states: Sequence[EndpointEpisode], do_sample: bool = False, **_: Any) -> list[str]:
        """One turn per episode from the endpoint (``concurrency`` requests in flight); returns their texts.

        Raises:
            EndpointError: The first transport failure, after every request of the round has ended.
        """
        futures = [self._pool.submit(self._turn, state, do_sample) for state in states]
        results: list[Completion | None] = []
        first_error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as error:  # noqa: BLE001  (re-raised below, once the round has ended)
                results.append(None)
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        texts = []
        for state, completion in zip(states, results):
            assert completion is not None
            state.replies.append(completion.message)
            state.turn_texts.append(completion.text)
            state.finish_reasons.append(completion.finish_reason)
            state.prompt_tokens += completion.prompt_tokens
            state.completion_tokens += completion.completion_tokens
            texts.append(completion.text)
        return texts

    def force_turn(self, state: EndpointEpisode, text: str) -> None:
        """Record ``text`` as the episode's turn (the oracle's; sent back as plain assistant text)."""
        state.replies.append(None)
        state.turn_texts.append(text)
        state.finish_reasons.append(None)

    def observe(self, state: EndpointEpisode, obs: dict[str, Any]) -> None:
        """Take the environment's dialogue and images after a step."""
        state.messages, state.images = list(obs["messages"]), list(obs["images"])

    def to_trajectory(self, state: EndpointEpisode, *, group_id: int, sample_index: int, **fields: Any) -> Trajectory:
        """The finished episode (no token ids: the endpoint's usage is in ``info``), appended to ``episodes_path``."""
        info = dict(fields.pop("info", {}) or {})
        info.update(
            turn_texts=list(state.turn_texts),
            finish_reasons=list(state.finish_reasons),
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
        )
        trajectory = Trajectory(
            input_ids=[],
            loss_mask=[],
            old_logprobs=[],
            images=list(state.images),
            group_id=group_id,
            sample_index=sample_index,
            num_turns=len(state.turn_texts),
            info=info,
            **fields,
        )
        if self.episodes_path is not None:
            self._append_episode(trajectory)
        return trajectory

    def close(self) -> None:
        """Stop the request threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _append_episode(self, t: Trajectory) -> None:
        record = {
            "sample_index": t.sample_index,
            "group_id": t.group_id,
            "sample_id": t.info.get("sample_id"),
            "category": t.info.get("category"),
            "correct": t.correct,
            "reward": t.reward,
            "turns": t.num_turns,
            "tool_calls": t.num_tool_calls,
            "tool_errors": t.tool_errors,
            "truncated": t.truncated,
            "completion_tokens": t.info["completion_tokens"],
            "turn_texts": t.info["turn_texts"],
        }
        self.episodes_path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with open(self.episodes_path, "a", encoding="utf-8") as out:  # type: ignore[arg-type]
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def _turn(self, state: EndpointEpisode, do_sample: bool) -> Completion:
        if self._stop.is_set():
            raise EndpointError("another request of this round failed; not sent")
        params: dict[str, Any] = {
            "temperature": float(self.temperature) if do_sample else 0.0,
            "max_tokens": int(self.max_new_tokens),
        }
        if do_sample:
            params["seed"] = int(self.seed * 1_000_003 + state.number * 101 + len(state.turn_texts)) % (2**31)
        if self.tools:
            params["tools"] = self.tools
        try:
            return self.client.complete(chat_messages(state), has_images=bool(state.images), **params)
        except EndpointError:
            self._stop.set()
            raise


def chat_messages(state: EndpointEpisode) -> list[dict[str, Any]]:
    """The episode's dialogue as OpenAI chat messages: images as data URLs, tool calls answered by ``tool`` messages.

    Every ``{"type": "image"}`` part takes the next image, in order. An assistant turn that came with
    ``tool_calls`` is sent back as that message, followed by one ``tool`` message per call (an OpenAI ``tool``
    message cannot carry an image: the text of the environment's reply goes there, its image in the user
    message that follows, as the ``openai`` dialect renders it).
    """
    images = iter(state.images)
    out: list[dict[str, Any]] = []
    turn = 0
    pending_calls: list[dict[str, Any]] = []
    for message in state.messages:
        role, parts = message["role"], message["content"]
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        if role == "assistant":
            reply = state.replies[turn] if turn < len(state.replies) else None
            turn += 1
            if reply is not None and reply.get("tool_calls"):
                out.append(dict(reply))
                pending_calls = list(reply["tool_calls"])
            else:
                out.append({"role": "assistant", "content": text})
            continue
        for call in pending_calls:
            out.append({"role": "tool", "tool_call_id": call["id"], "content": text or "(see the next message)"})
        pending_calls = []
        if any(p.get("type") == "image" for p in parts):
            content = []
            for part in parts:
                if part.get("type") == "image":
                    image = next(images, None)
                    if image is None:
                        raise ConfigError("the observation has more image parts than images")
                    content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
                elif part.get("type") == "text":
                    content.append({"type": "text", "text": part["text"]})
            out.append({"role": role, "content": content})
        else:
            out.append({"role": role, "content": text})
    return out


def dialect_tools(env: Any) -> list[dict[str, Any]] | None:
    """``tools=`` for an environment whose dialect takes structured calls (``openai``), else None."""
    base = getattr(env, "unwrapped", env)
    dialect = getattr(base, "dialect", None)
    if dialect is None or getattr(dialect, "name", None) != "openai":
        return None
    schema = dialect.tool_schema(base.coords, base.description_mode == "label")
    return None if schema is None else [schema]
