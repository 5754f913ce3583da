"""What the example studies share: checkpoints they start from, child runs, statistics, README blocks.

The studies (``compare_algorithms.py``, ``robustness_study.py``, ``distillation_study.py``) each run
independent training runs as child processes (one thread each, ``--jobs`` at a time), write one
``result.json`` per run as soon as it ends (an interrupted study resumes where it stopped), and turn
the results into a Markdown table that ``--publish`` writes into README.md between the study's
markers. This module holds the parts they have in common; it is not part of the installed package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from mapo_agent.config import TrainConfig

# --------------------------------------------------------------------------------- starting points
_STOP_AFTER = r"""
import json, sys
from mapo_agent.config import TrainConfig
from mapo_agent.trainer import Trainer

stop_after = int(sys.argv[2])


class StopAfter:
    def on_step_end(self, trainer, step, metrics):
        trainer.should_stop = step + 1 >= stop_after


Trainer(TrainConfig.from_dict(json.loads(sys.argv[1])), callbacks=[StopAfter()]).train()
"""


def recipe_checkpoint(folder: Path, base: TrainConfig, stop_after: int | None = None) -> Path:
    """``folder/final``: the bundled recipe (``mapo-train``'s defaults), trained unless already there.

    ``stop_after``: stop the recipe's grounded SFT after that many steps of its own schedule (no RL),
    a weak checkpoint; None: the whole recipe (SFT and its RL stage), the fully trained agent.
    """
    final = folder / "final"
    if final.is_dir():
        return final
    config = replace(base, output_dir=str(folder), eval_every=0)
    if stop_after is not None:
        if stop_after > config.sft_steps:
            raise SystemExit(f"cannot stop after {stop_after} steps: the recipe has {config.sft_steps} SFT steps")
        config = replace(config, steps=0)
    steps = config.total_steps if stop_after is None else stop_after
    subprocess.run([sys.executable, "-c", _STOP_AFTER, json.dumps(config.to_dict()), str(steps)], check=True)
    return final


# ------------------------------------------------------------------------------------------ runs
def run_child(code: str, spec: dict[str, Any], label: str) -> bool:
    """Run ``code`` (a Python program reading ``sys.argv[1]`` = the JSON spec) in a one-thread child.

    Its output goes to ``log.txt`` beside ``spec["result"]``; returns whether it exited cleanly.
    """
    log = Path(spec["result"]).with_name("log.txt")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(spec)], stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    status = "done" if done.returncode == 0 else f"FAILED (exit {done.returncode}, see {log})"
    print(f"{label}: {status}", flush=True)
    return done.returncode == 0


def parse_method(method: str) -> tuple[str, dict[str, Any]]:
    """``"roma:consistency_coef=0.5,num_views=3"`` -> ``("roma", {"consistency_coef": 0.5, "num_views": 3})``.

    A study's method is an algorithm name, optionally with config fields after a colon (values read
    as JSON when they parse, else kept as strings): a variant of the algorithm beside its defaults.
    """
    name, _, fields = method.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, fields.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"method {method!r}: expected key=value after the colon, got {item!r}")
        try:
            kwargs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key.strip()] = value
    return name, kwargs


def method_dir(out: Path, method: str) -> Path:
    """The folder of a method's runs (``roma:consistency_coef=0.5`` -> ``out/roma-consistency_coef=0.5``)."""
    return out / method.replace(":", "-").replace(",", "-")


def base_config(**fields: Any) -> TrainConfig:
    """The bundled recipe's config as every study's run uses it: one thread, no checkpoints, no progress bar."""
    return replace(TrainConfig(), save_every=0, progress_bar=False, threads=1, **fields)


def run_config(
    base: TrainConfig,
    method: str,
    seed: int,
    init: Path,
    run_dir: Path,
    args: argparse.Namespace,
    *,
    eval_every: int,
    algo_kwargs: dict[str, Any] | None = None,
) -> TrainConfig:
    """One run of a study: ``method`` (:func:`parse_method`) trained from checkpoint ``init``.

    ``args.steps`` steps (no SFT) of ``args.questions_per_step`` questions x ``args.group_size``
    rollouts at peak lr ``args.lr`` after ``args.warmup_steps`` warm-up steps, the same for every
    method; ``algo_kwargs`` are fields every method of the study gets (the method's own win).
    """
    algo, fields = parse_method(method)
    return replace(
        base,
        algo=algo,
        algo_kwargs={**(algo_kwargs or {}), **fields},
        seed=seed,
        steps=args.steps,
        sft_steps=0,
        eval_every=eval_every,
        output_dir=str(run_dir),
        model=replace(base.model, name_or_path=str(init)),
        rollout=replace(base.rollout, questions_per_step=args.questions_per_step, group_size=args.group_size),
        optim=replace(base.optim, lr=args.lr, warmup_steps=args.warmup_steps),
    )


def add_budget_arguments(parser: argparse.ArgumentParser, *, steps: int, eval_episodes: int) -> None:
    """The training budget of a 3-seed study: seeds, steps, questions x rollouts, lr, warm-up, evaluation size."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=steps, help="training steps per run")
    parser.add_argument("--questions-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate, the same for every method")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=eval_episodes)


def add_study_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options every study has: ``--jobs``, ``--out``, ``--report-only``, ``--publish``."""
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    parser.add_argument("--out", default=out)
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs")
    parser.add_argument("--publish", action="store_true", help="write the report into README.md and docs/images/")


def run_jobs(jobs: list[tuple[str, dict[str, Any], str]], parallel: int) -> None:
    """Run ``(code, spec, label)`` children (:func:`run_child`), ``parallel`` at a time."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda job: run_child(*job), jobs))


def unfinished(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The specs whose ``result`` file does not exist yet (a rerun skips finished runs)."""
    return [spec for spec in specs if not Path(spec["result"]).is_file()]


def run_study(
    name: str,
    args: argparse.Namespace,
    reference: tuple[str, dict[str, Any], str],
    runs: list[tuple[str, dict[str, Any], str]],
    report: Callable[[dict[str, Any]], str],
    figure: Path,
) -> None:
    """Run the reference job (unless its result exists) and the unfinished runs, then report.

    ``report`` turns the reference's result into the study's Markdown (it reads the runs itself);
    with ``--publish`` the text and ``figure`` go into README's ``name`` block.
    """
    started = time.perf_counter()
    reference_path = Path(reference[1]["result"])
    jobs = ([] if reference_path.is_file() else [reference]) + runs
    if not args.report_only:
        run_jobs(jobs, args.jobs)
    text = report(read_json(reference_path))
    print(text)
    if args.publish:
        publish_block(name, text, [figure])
    print(f"total wall time of this invocation: {(time.perf_counter() - started) / 60:.1f} min")


def read_json(path: Path) -> dict[str, Any]:
    """``path``'s JSON object, or ``{}`` when the file is not there (yet)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def load_runs(out: Path, methods: list[str]) -> dict[str, dict[int, dict]]:
    """``{method: {seed: result}}`` of the finished runs under ``<method folder>/seed<k>/result.json``."""
    results: dict[str, dict[int, dict]] = {}
    for method in methods:
        for path in sorted(method_dir(out, method).glob("seed*/result.json")):
            results.setdefault(method, {})[int(path.parent.name[4:])] = json.loads(path.read_text())
    return results


# ---------------------------------------------------------------------------------------- statistics
def t_quantile(n: int) -> float:
    """Two-sided 95 % Student-t quantile for n − 1 degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def mean_ci(values: list[float | None]) -> tuple[float, float]:
    """Mean and 95 % t-interval half-width (nan for one value) of the non-missing values."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return float("nan"), float("nan")
    if len(kept) == 1:
        return kept[0], float("nan")
    return statistics.mean(kept), t_quantile(len(kept)) * statistics.stdev(kept) / math.sqrt(len(kept))


def cell(values: list[float | None], digits: int = 3) -> str:
    """``mean ± half-width`` (or the one value, or ``–``) for a Markdown table."""
    mean, half = mean_ci(values)
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> str:
    """``a − b`` over the seeds both have: mean ± 95 % CI and the paired t-test's p (or why not)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return "fewer than 2 common seeds"
    x, y = [a[s] for s in seeds], [b[s] for s in seeds]
    mean, half = mean_ci([p - q for p, q in zip(x, y, strict=True)])
    p = stats.ttest_rel(x, y).pvalue
    p_text = "n/a (identical)" if math.isnan(p) else f"{p:.3f}"
    return f"{mean:+.3f} ± {half:.3f} (paired t-test p = {p_text}, {len(seeds)} seeds)"


# -------------------------------------------------------------------------------------- publishing
def publish_block(name: str, body: str, figures: list[Path], readme: Path = Path("README.md")) -> None:
    """Replace README's block between ``<!-- {name}:begin -->`` and ``<!-- {name}:end -->``.

    ``body`` is the study's Markdown; each figure is copied to ``docs/images/{name}_<file name>`` and
    shown under it.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = readme.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{readme} has no {begin} ... {end} block to replace")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    images = Path("docs/images")
    shown = []
    for source in figures:
        if source.is_file():
            images.mkdir(parents=True, exist_ok=True)
            target = images / f"{name}_{source.name}"
            target.write_bytes(source.read_bytes())
            shown.append(f"![{source.stem.replace('_', ' ')}]({target.as_posix()})")
    block = "\n".join(["", body.strip(), "", *shown, ""]) if shown else f"\n{body.strip()}\n"
    readme.write_text(head + begin + block + end + tail, encoding="utf-8")
