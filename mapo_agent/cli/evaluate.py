"""``mapo-eval``: Avg@k of any model (or the oracle) on any registered environment, real data included."""

from __future__ import annotations

import logging
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapo_agent.cli import checks
from mapo_agent.cli.checks import report_error
from mapo_env.errors import ConfigError, MapoError

if TYPE_CHECKING:
    from mapo_agent.evaluation import EvalReport

PROG = "mapo-eval"

DESCRIPTION = """\
Evaluate a model on a MAPO environment with the protocol of the thinking-with-images papers:
every question is answered k times with its options reshuffled each time, and the report gives
Avg@k with a 95% confidence interval (questions as the unit), a per-category table, alignment,
tool use and target IoU. Writes <output-dir>/<stem>.json and <stem>.md. With --env-kwargs
zoom_enabled=false (the tool-disabled ablation) the zoom calls are counted as
eval/disabled_tool_calls; tool calls, alignment and target IoU cover crops actually shown (n/a: none).

Which questions: the first --num-questions of the dataset (the test split of a procedural env),
or another subset with --question-offset (a contiguous slice) or --sample-seed (drawn at random).
What --seed changes: the reset seeds, i.e. the option order of environments that shuffle their
options (MAPO-Tiles-v0 keeps a fixed order by default), and the sampling when --temperature > 0.
It never changes which questions are asked: with greedy decoding on Tiles every seed gives the same
result.

Overwrite rule (the same for mapo-eval, mapo-viz and mapo-train): an existing report is never
replaced silently; the command refuses to start unless --overwrite is given (or write to another
--output-dir / --stem). Every argument, the model path and the output folder are checked before
the model is loaded; errors are one line and exit code 2. If the evaluation stops early (an error,
Ctrl-C), the finished episodes are still written, marked INCOMPLETE.

Robustness: --corruption NAME (or seen, unseen, all, or names joined by commas) evaluates the same
questions clean and then under each corruption at --severity (1-5; ImageNet-C's scale), degrading
every image the model sees (--corruption-target all, or only the full view or the crops); the zoom
geometry, the alignment scores and the rewards stay those of the clean images. The report adds a
table: each condition's accuracy with its 95% CI and its difference from clean (paired over
questions), and the mean over the seen and the unseen corruptions. The seen set (gaussian_noise,
gaussian_blur, jpeg, low_resolution, contrast) may be used in training; the unseen set (motion_blur,
defocus_blur, pixelate, salt_and_pepper, brightness, fog) is for evaluation only.

Served models: --endpoint URL --model NAME evaluates the model an OpenAI-compatible server (vLLM,
SGLang, a hosted API) serves under NAME, with the same protocol and report. Each turn sends the
episode's dialogue with its images as PNG data URLs at the environment's resolution; the reply's text
goes to the environment, whose --dialect parses it (with --dialect openai the zoom tool also travels
as tools=). The key is read from the variable --api-key-env names (default OPENAI_API_KEY; unset:
no key). --concurrency requests are in flight at once; a request that fails (connection, timeout,
HTTP 408/429/5xx, a malformed body) is tried again --retries times with exponential backoff;
--max-requests caps the requests sent. A server that cannot be reached, refuses images, answers
garbage or exhausts the budget stops the evaluation with a one-line error; the finished episodes are
written (<stem>.episodes.jsonl gets each as it finishes) and the report is marked INCOMPLETE.
"""

EPILOG = """\
examples:
  mapo-eval --model runs/mapo-tiles/final                                   # held-out Tiles episodes
  mapo-eval --model runs/mapo-tiles/final --sample-seed 1 --stem eval-s1     # another random held-out subset
  mapo-eval --model Qwen/Qwen2.5-VL-7B-Instruct --env MAPO-VStar-v0 --data-dir path/to/vstar_bench --k 8 \\
            --temperature 1.0 --max-new-tokens 1024
  mapo-eval --oracle --env MAPO-VStar-v0 --data-dir path/to/vstar_bench      # the upper bound
  mapo-eval --model runs/mapo-tiles/final --env-kwargs zoom_enabled=false --stem eval-nozoom   # tool disabled
  mapo-eval --model path/to/mini-o3 --env MAPO-VStar-v0 --dialect mini_o3   # a checkpoint in its own tool dialect
  mapo-eval --model runs/mapo-tiles/final --corruption jpeg --severity 5 --stem eval-jpeg5     # clean vs JPEG
  mapo-eval --model runs/mapo-tiles/final --corruption all --stem eval-robust  # clean, 5 seen, 6 unseen corruptions
  mapo-eval --endpoint http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-VL-7B-Instruct --env MAPO-VStar-v0 \\
            --data-dir path/to/vstar_bench --dialect qwen25vl --concurrency 16        # a served model
  mapo-eval --endpoint https://api.example.com/v1 --model NAME --api-key-env MY_KEY --dialect openai \\
            --max-requests 2000                                                       # a hosted API, capped
"""

REPORT_SUFFIXES = (".json", ".md")
"""The files one evaluation writes: ``<stem>.json`` and ``<stem>.md``."""
EPISODES_SUFFIX = ".episodes.jsonl"
"""With --endpoint, also ``<stem>.episodes.jsonl``: one line per episode, written as it finishes."""


@dataclass
class EvalConfig:
    """Evaluate a model or the oracle on an environment."""

    model: str | None = None
    """Checkpoint folder (e.g. a run's final/) or hub id; None = the bundled (untrained) tiny agent."""
    env: str = "MAPO-Tiles-v0"
    """Registered environment id."""
    data_dir: str | None = None
    """Real benchmark folder/file for the env (V* folder, HR-Bench TSV, MME-RealWorld JSON); None = procedural."""
    split: str = "test"
    """Procedural data split (ignored with --data-dir)."""
    dialect: str | None = None
    """Tool dialect the model was trained with (docs/dialects.md): deepeyes, pixel_reasoner, mini_o3, qwen25vl,
    openai; sets the prompt, call syntax, coordinates and answer format. None = the run's or the env's (deepeyes)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra gym.make keyword arguments as KEY=VALUE (values read as JSON), over those the model trained with
    (a run's final/ reads the run's config.json: image sizes, turns, prompt; the bundled agent: its per-env
    defaults)."""
    num_questions: int = 200
    """Questions to evaluate (>= 1; all of the dataset if it has fewer)."""
    question_offset: int = 0
    """Start at this question of the dataset (a contiguous held-out slice: questions offset .. offset+N-1)."""
    sample_seed: int | None = None
    """None = the questions in dataset order; an int = N distinct questions drawn at random with this seed."""
    k: int = 1
    """Episodes per question (Avg@k, >= 1); each repeat has a new reset seed (options reshuffled where shuffled)."""
    temperature: float = 0.0
    """0 = greedy decoding; > 0 samples at this temperature (negative values are refused)."""
    max_new_tokens: int = 256
    """Token budget of one generated turn."""
    oracle: bool = False
    """Evaluate the environment's scripted expert (the upper bound) instead of a model."""
    seed: int = 0
    """Seed of the reset seeds (option order where options are shuffled) and of sampling; not of the questions."""
    output_dir: str = "eval"
    """Where the reports go."""
    stem: str = "eval"
    """File name stem of the reports (letters, digits, '.', '_', '-')."""
    overwrite: bool = False
    """Replace <stem>.json / <stem>.md if they exist (default: refuse to start)."""
    cpu: bool = False
    """Force CPU."""
    corruption: str | None = None
    """None = clean only; a corruption name, seen, unseen, all, or names joined by commas: evaluate clean and
    under each of them (see Robustness above)."""
    severity: int = 3
    """Severity of the corruptions (1 = mild ... 5 = severe)."""
    corruption_target: str = "all"
    """Which images are corrupted: all (the full view and every crop), view, or crops."""
    endpoint: str | None = None
    """OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1): evaluate the model it serves as --model NAME."""
    api_key_env: str | None = None
    """With --endpoint: the environment variable holding the API key (must be set if given); None = OPENAI_API_KEY
    when set, else no key."""
    concurrency: int = 8
    """With --endpoint: requests in flight at once."""
    timeout: float = 120.0
    """With --endpoint: seconds one request may take."""
    retries: int = 3
    """With --endpoint: extra tries of a failed request (exponential backoff from 1 s)."""
    max_requests: int | None = None
    """With --endpoint: the most HTTP requests to send, retries included (None = no budget)."""

    def __post_init__(self) -> None:
        for name in ("num_questions", "k", "max_new_tokens"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("seed", "question_offset"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.sample_seed is not None:
            _check_int("sample_seed", self.sample_seed, minimum=0)
            if self.question_offset:
                raise ConfigError("give --question-offset or --sample-seed, not both")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            raise ConfigError(f"--temperature must be a number >= 0, got {self.temperature!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        _check_stem(self.stem)
        if self.endpoint is not None:
            self._check_endpoint()
        if self.dialect is not None:
            from mapo_env.dialects import get_dialect

            self.dialect = get_dialect(self.dialect).name  # an unknown name: UnknownDialectError listing the names
        if self.corruption is not None:
            from mapo_env.corruptions import check_severity, resolve_corruptions
            from mapo_env.wrappers.corruption import CORRUPTION_TARGETS

            try:
                resolve_corruptions(self.corruption)
                check_severity(self.severity)
            except MapoError as error:
                raise type(error)(f"--corruption/--severity: {error}") from None
            if self.corruption_target not in CORRUPTION_TARGETS:
                raise ConfigError(
                    f"--corruption-target must be one of {', '.join(CORRUPTION_TARGETS)}, "
                    f"got {self.corruption_target!r}"
                )

    def _check_endpoint(self) -> None:
        from mapo_agent.endpoint import check_settings, check_url

        self.endpoint = check_url(self.endpoint)  # type: ignore[arg-type]
        check_settings(
            timeout=self.timeout, retries=self.retries, max_requests=self.max_requests, concurrency=self.concurrency
        )
        if not self.model:
            raise ConfigError("--endpoint needs --model NAME: the model name the endpoint serves")
        if self.oracle:
            raise ConfigError("--endpoint and --oracle exclude each other (the oracle needs no model)")


def endpoint_api_key(config: EvalConfig) -> str:
    """The API key from the variable ``--api-key-env`` names (a :class:`ConfigError` if it is unset)."""
    import os

    if config.api_key_env is None:
        return os.environ.get("OPENAI_API_KEY") or "EMPTY"
    key = os.environ.get(config.api_key_env)
    if not key:
        raise ConfigError(f"--api-key-env {config.api_key_env}: that environment variable is unset or empty")
    return key


def _check_int(name: str, value: Any, minimum: int) -> None:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{flag} must be an integer >= {minimum}, got {value!r}")


def _check_stem(stem: str) -> None:
    if not isinstance(stem, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", stem):
        raise ConfigError(
            f"--stem must be a plain file name stem (letters, digits, '.', '_', '-'; no folder), got {stem!r}"
        )


def main(argv: list[str] | None = None) -> int:
    """Check the arguments, run the evaluation, write and print the report; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    config = checks.parse_command_line(EvalConfig, argv, PROG, DESCRIPTION, EPILOG)
    if isinstance(config, int):
        return config
    try:
        questions, env_kwargs = preflight(config)
        from mapo_agent.evaluation import EvaluationInterrupted

        try:
            report = run(config, questions, env_kwargs)
        except EvaluationInterrupted as stopped:
            code = 130 if isinstance(stopped.cause, KeyboardInterrupt) else 1
            report_error(PROG, stopped)
            return _write(config, stopped.report, error_code=code)
    except MapoError as error:
        return report_error(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before any episode finished; nothing written", file=sys.stderr)
        return 130
    return _write(config, report)


def training_env_kwargs(model: str | None, env_id: str) -> dict[str, Any]:
    """The ``gym.make`` kwargs the model was trained with on ``env_id``, the defaults under ``--env-kwargs``.

    A run's ``final/`` folder sits next to the run's ``config.json``, saved with the resolved
    settings (image sizes, turns, prompt): a model is evaluated in the frame it learned. The bundled
    untrained agent (no ``--model``) gets the tiny agent's per-env defaults. Anything else: none.
    """
    import json

    if model is None:
        from mapo_agent.agent_defaults import agent_defaults

        return dict(agent_defaults(env_id, None).env_kwargs)
    run_config = Path(model).parent / "config.json"
    try:
        env = json.loads(run_config.read_text(encoding="utf-8"))["env"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(env, dict) or env.get("id") != env_id or not isinstance(env.get("kwargs"), dict):
        return {}
    return {k: v for k, v in env["kwargs"].items() if k not in ("split", "data_dir")}


def preflight(config: EvalConfig) -> tuple[list[int], dict[str, Any]]:
    """Every check that needs no model: env id and kwargs, data, questions, model path, output folder.

    Returns the questions to evaluate and the ``gym.make`` kwargs. Raises a :class:`MapoError`.
    """
    if config.endpoint is not None:
        from mapo_agent.endpoint import require_openai

        require_openai()
        endpoint_api_key(config)
    trained = {} if config.endpoint is not None else training_env_kwargs(config.model, config.env)
    env_kwargs = {**trained, **config.env_kwargs}
    if config.dialect is not None:
        env_kwargs["dialect"] = config.dialect
    if config.data_dir is not None:
        env_kwargs["data_dir"] = config.data_dir
    else:
        env_kwargs.setdefault("split", config.split)
    size = checks.check_env(config.env, env_kwargs)
    if config.question_offset >= size:
        raise ConfigError(
            f"--question-offset {config.question_offset} is past the last of {config.env}'s {size} questions"
        )
    if config.endpoint is None:
        checks.check_model(config.model)
    checks.check_output_dir(config.output_dir)
    if not config.overwrite:
        suffixes = REPORT_SUFFIXES + ((EPISODES_SUFFIX,) if config.endpoint is not None else ())
        checks.refuse_overwrite(config.output_dir, [config.stem + s for s in suffixes], " (or pass another --stem)")
    from mapo_agent.evaluation import select_questions  # imports torch: after the cheap checks

    questions = select_questions(
        size, config.num_questions, offset=config.question_offset, sample_seed=config.sample_seed
    )
    return questions, env_kwargs


def run(config: EvalConfig, questions: list[int] | None = None, env_kwargs: dict[str, Any] | None = None):
    """Build the policy and evaluate ``questions`` (default: :func:`preflight`'s) as ``config`` says."""
    from mapo_agent.evaluation import EvaluationInterrupted
    from mapo_agent.policy import HFPolicy

    if questions is None or env_kwargs is None:
        questions, env_kwargs = preflight(config)
    if config.endpoint is not None:
        return _run_endpoint(config, questions, env_kwargs)
    with checks.model_loading("--model", config.model):
        policy = HFPolicy.from_pretrained(
            config.model,
            device="cpu" if config.cpu else None,
            temperature=config.temperature if config.temperature > 0 else 1.0,
            max_new_tokens=config.max_new_tokens,
        )
    generate = {"do_sample": config.temperature > 0}
    protocol = {
        "questions": questions,
        "k": config.k,
        "actor": "oracle" if config.oracle else "policy",
        "generate_kwargs": generate,
        "seed": config.seed,
        "keep_partial": True,
    }
    try:
        report = _evaluate_protocol(policy, config, env_kwargs, protocol)
    except EvaluationInterrupted as stopped:
        _describe(stopped.report, config, questions)
        raise
    _describe(report, config, questions)
    return report


def _evaluate_protocol(policy: Any, config: EvalConfig, env_kwargs: dict[str, Any], protocol: dict) -> EvalReport:
    """Clean evaluation, or clean plus every ``--corruption`` on the same questions (a robustness report)."""
    from mapo_agent.evaluation import evaluate, evaluate_robustness

    if config.corruption is None:
        return evaluate(policy, config.env, env_kwargs, **protocol)
    return evaluate_robustness(
        policy,
        config.env,
        env_kwargs,
        corruptions=config.corruption,
        severity=config.severity,
        corruption_target=config.corruption_target,
        **protocol,
    )


def _run_endpoint(config: EvalConfig, questions: list[int], env_kwargs: dict[str, Any]) -> EvalReport:
    """Evaluate the model served at ``--endpoint`` (see the Served models paragraph of ``--help``)."""
    import gymnasium as gym

    from mapo_agent.endpoint import EndpointClient, EndpointPolicy, dialect_tools
    from mapo_agent.evaluation import EvaluationInterrupted

    assert config.endpoint is not None and config.model is not None
    client = EndpointClient(
        config.endpoint,
        config.model,
        api_key=endpoint_api_key(config),
        timeout=config.timeout,
        retries=config.retries,
        max_requests=config.max_requests,
    )
    served = client.served_models()  # unreachable: a named error before any episode
    if served is not None and config.model not in served:
        raise ConfigError(f"{config.endpoint} does not serve {config.model!r}; it serves {served}")
    env = gym.make(config.env, **env_kwargs)
    tools = dialect_tools(env)
    env.close()
    episodes = Path(config.output_dir) / (config.stem + EPISODES_SUFFIX)
    episodes.unlink(missing_ok=True)  # refused above unless --overwrite
    policy = EndpointPolicy(
        client,
        concurrency=config.concurrency,
        temperature=config.temperature if config.temperature > 0 else 1.0,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        tools=tools,
        episodes_path=episodes,
    )
    protocol = {
        "questions": questions,
        "k": config.k,
        "generate_kwargs": {"do_sample": config.temperature > 0},
        "seed": config.seed,
        "batch_questions": config.concurrency,  # finished episodes are written every round of requests
        "keep_partial": True,
    }
    try:
        report = _evaluate_protocol(policy, config, env_kwargs, protocol)
    except EvaluationInterrupted as stopped:
        _describe_endpoint(stopped.report, config, questions, client)
        raise
    finally:
        policy.close()
    _describe_endpoint(report, config, questions, client)
    return report


def _describe_endpoint(report: EvalReport, config: EvalConfig, questions: list[int], client: Any) -> None:
    _describe(report, config, questions)
    episodes = report.trajectories
    if episodes:  # no token ids from an endpoint: its usage counts instead
        report.metrics["eval/response_tokens"] = sum(t.info.get("completion_tokens", 0) for t in episodes) / len(
            episodes
        )
    report.metrics["eval/endpoint_requests"] = float(client.requests)
    report.metrics["eval/endpoint_retries"] = float(client.retried)
    report.settings["endpoint"] = {
        "url": config.endpoint,
        "served_model": config.model,
        "concurrency": config.concurrency,
        "timeout_s": config.timeout,
        "retries": config.retries,
        "max_requests": config.max_requests,
    }


def _describe(report: EvalReport, config: EvalConfig, questions: list[int]) -> None:
    report.settings["model"] = "oracle" if config.oracle else (config.model or "bundled tiny agent")
    report.settings["questions"] = (
        f"{len(questions)} drawn with sample seed {config.sample_seed}"
        if config.sample_seed is not None
        else f"{questions[0]}..{questions[-1]}"
    )


def _write(config: EvalConfig, report: EvalReport, error_code: int = 0) -> int:
    """Save the report (elsewhere if the output folder fails now) and print it; returns the exit code."""
    if "model" not in report.settings:
        report.settings["model"] = "oracle" if config.oracle else (config.model or "bundled tiny agent")
    try:
        json_path, md_path = report.save(config.output_dir, config.stem)
    except OSError as error:
        fallback = tempfile.mkdtemp(prefix="mapo-eval-")
        json_path, md_path = report.save(fallback, config.stem)
        print(
            f"{PROG}: error: could not write to {config.output_dir!r} ({error.strerror or error}); "
            f"the report was saved to {fallback} instead",
            file=sys.stderr,
        )
        error_code = error_code or 1
    print(report.markdown())
    print(f"reports: {json_path} {md_path}")
    return error_code


if __name__ == "__main__":
    sys.exit(main())
