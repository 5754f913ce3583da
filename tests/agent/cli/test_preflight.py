"""Every bad argument of mapo-train / mapo-eval / mapo-viz is refused before a model loads: one line, exit code 2.

The classes of the hardening issue: unknown env id, unknown or refused env kwargs, a missing or
wrong model path, an output folder that is a file, lies under a file or is not writable, and eval
settings out of range. Each is tried on every CLI that takes it, with generated inputs where the
space is large.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapo_agent.cli import checks, evaluate, train, visualize
from mapo_agent.cli.evaluate import EvalConfig
from mapo_agent.cli.visualize import VizConfig
from mapo_env import ENV_IDS
from mapo_env.errors import ConfigError, UnknownNameError

MAINS = {"mapo-train": train.main, "mapo-eval": evaluate.main, "mapo-viz": visualize.main}
ENV_FLAG = {"mapo-train": "--env.id", "mapo-eval": "--env", "mapo-viz": "--env"}
KWARGS_FLAG = {"mapo-train": "--env.kwargs", "mapo-eval": "--env-kwargs", "mapo-viz": "--env-kwargs"}
MODEL_FLAG = {"mapo-train": "--model.name-or-path", "mapo-eval": "--model", "mapo-viz": "--model"}
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def refused(prog: str, argv: list[str], capsys, output_dir: Path) -> str:
    """Run the CLI in-process; assert a clean refusal before any model load; return the error line."""
    code = MAINS[prog]([*argv, "--output-dir", str(output_dir)] if "--output-dir" not in argv else argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), captured.err
    assert "Traceback" not in captured.err and "Loading weights" not in captured.err
    assert not output_dir.exists() or output_dir.is_file()  # nothing was written
    return lines[0]


# ------------------------------------------------------------------------------------------- env ids
@pytest.mark.parametrize("prog", MAINS)
@pytest.mark.parametrize("env_id", ["MAPO-Tils-v0", "MAPO-Tiles-v1", "CartPole-v1", "", "mapo-tiles-v0"])
def test_unknown_or_foreign_env_id(prog, env_id, capsys, tmp_path):
    line = refused(prog, [ENV_FLAG[prog], env_id], capsys, tmp_path / "out")
    assert "MAPO-Tiles-v0" in line  # the message lists the ids to use


# ------------------------------------------------------------------------------------------ env kwargs
@pytest.mark.parametrize("prog", MAINS)
@pytest.mark.parametrize(
    "pair", ["zom_enabled=false", "max_turn=3", "alignment=nonsense", "max_turns=0", "split=tst", "=3", "novalue"]
)
def test_bad_env_kwargs(prog, pair, capsys, tmp_path):
    line = refused(prog, [KWARGS_FLAG[prog], pair], capsys, tmp_path / "out")
    key = pair.split("=")[0]
    if key in ("zom_enabled", "max_turn"):
        assert repr(key) in line and "Did you mean" in line


identifiers = st.text(string.ascii_lowercase + "_", min_size=1, max_size=20).filter(str.isidentifier)


@FAST
@given(env_id=st.sampled_from(ENV_IDS), key=identifiers)
def test_any_unknown_env_kwarg_is_named(env_id, key):
    accepted, open_ended = checks.env_parameters(env_id)
    assert not open_ended and "zoom_enabled" in accepted and "split" in accepted
    if key in accepted:
        return
    with pytest.raises(ConfigError, match=repr(key)):
        checks.check_env(env_id, {key: 1})


def test_env_check_returns_the_dataset_size_and_refuses_missing_data(tmp_path):
    assert checks.check_env("MAPO-Tiles-v0", {"split": "test", "num_samples": 12}) == 12
    with pytest.raises(UnknownNameError):
        checks.check_env("MAPO-Nope-v0", {})
    from mapo_env.errors import DatasetError

    with pytest.raises(DatasetError):
        checks.check_env("MAPO-VStar-v0", {"data_dir": str(tmp_path / "missing")})


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("prog", MAINS)
def test_missing_model_folder(prog, capsys, tmp_path):
    line = refused(prog, [MODEL_FLAG[prog], str(tmp_path / "runs" / "x" / "final")], capsys, tmp_path / "out")
    assert "no such folder" in line


def test_model_that_is_a_file_or_a_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ConfigError, match="is a file"):
        checks.check_model(str(tmp_path / "weights.bin"))
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="its model is"):  # a run folder instead of its final/
        checks.check_model(str(run))
    checks.check_model(str(run / "final"))
    checks.check_model(None)  # the bundled agent


@FAST
@given(parts=st.lists(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8), min_size=3,
                      max_size=5))  # fmt: skip
def test_deep_missing_paths_are_never_taken_for_hub_ids(parts):
    with pytest.raises(ConfigError, match="no such folder"):
        checks.check_model("/".join(["no-such-root-folder", *parts]))


def test_hub_ids_pass_online_and_need_the_cache_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    checks.check_model("Qwen/Qwen2.5-VL-3B-Instruct")  # downloaded when the model loads
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        checks.check_model("no-such-org-mapo/no-such-model")


# --------------------------------------------------------------------------------------- output folders
def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to (chmod; as root, which ignores modes, a sysfs folder)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    sysfs = Path("/sys/fs")
    if not sysfs.is_dir():
        pytest.skip("running as root and no read-only sysfs to write to")
    return sysfs


@pytest.mark.parametrize("prog", MAINS)
@pytest.mark.parametrize("kind", ["file", "under_file", "read_only"])
def test_bad_output_folder(prog, kind, capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = {
        "file": afile,
        "under_file": afile / "sub" / "out",
        "read_only": read_only_folder(tmp_path) / "mapo-out",
    }[kind]
    line = refused(prog, ["--output-dir", str(target)], capsys, target)
    assert {"file": "is a file", "under_file": "which is a file", "read_only": "not writable"}[kind] in line


def test_viz_run_folder_must_be_a_run(capsys, tmp_path):
    assert visualize.main(["--run", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ eval settings
@pytest.mark.parametrize(
    "argv",
    [
        ["--num-questions", "0"],
        ["--num-questions", "-1"],
        ["--k", "0"],
        ["--k", "-3"],
        ["--temperature", "-1"],
        ["--temperature", "nan"],
        ["--temperature", "inf"],
        ["--max-new-tokens", "0"],
        ["--seed", "-1"],
        ["--question-offset", "-1"],
        ["--question-offset", "1000000"],  # past the end of the test split
        ["--sample-seed", "-2"],
        ["--question-offset", "3", "--sample-seed", "1"],
        ["--stem", "../x"],
        ["--stem", ""],
        ["--k", "two"],
        ["--no-such-flag"],
    ],
)
def test_bad_eval_settings(argv, capsys, tmp_path):
    refused("mapo-eval", argv, capsys, tmp_path / "out")


@FAST
@given(
    num_questions=st.integers(max_value=0),
    k=st.integers(max_value=0),
    temperature=st.one_of(st.floats(max_value=-1e-9), st.just(float("nan")), st.just(float("inf"))),
)
def test_eval_settings_out_of_range_are_each_refused(num_questions, k, temperature):
    for bad in ({"num_questions": num_questions}, {"k": k}, {"temperature": temperature}):
        with pytest.raises(ConfigError):
            EvalConfig(**bad)
    for bad in ({"episodes": num_questions}, {"temperature": temperature}):
        with pytest.raises(ConfigError):
            VizConfig(**bad)


@pytest.mark.parametrize(
    "argv", [["--episodes", "0"], ["--seed", "-1"], ["--temperature", "-0.5"], ["--format", "gif"]]
)
def test_bad_viz_settings(argv, capsys, tmp_path):
    refused("mapo-viz", argv, capsys, tmp_path / "out")


@pytest.mark.parametrize(
    "argv",
    [
        ["--algo-kwargs", "no_such_field=1"],
        ["--sft-kwargs", "no_such_field=1"],
        ["--env.eval-kwargs", "split=tst"],
        ["--env.sft-kwargs", "max_turns=0"],
        ["--resume", "--overwrite"],
        ["--rollout.group-size", "0"],
    ],
)
def test_bad_train_settings(argv, capsys, tmp_path):
    refused("mapo-train", argv, capsys, tmp_path / "out")


def test_a_refusal_is_one_line_from_the_console_entry_point(tmp_path):
    """End to end in a fresh interpreter: exit code 2, one stderr line, no traceback, nothing on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "mapo_agent.cli.evaluate", "--env-kwargs", "zom=1", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mapo-eval: error: --env-kwargs")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(env_id=st.sampled_from(ENV_IDS), data=st.data())
def test_any_env_kwarg_value_passes_or_is_a_named_error(env_id, data):
    """Fuzz: KEY=VALUE with an accepted key and any JSON value builds the env or raises a MapoError, nothing else."""
    from mapo_env.errors import MapoError

    accepted, _ = checks.env_parameters(env_id)
    key = data.draw(st.sampled_from([k for k in accepted if k != "data_dir"]))
    value = data.draw(json_values)
    try:
        checks.check_env(env_id, {key: value})
    except MapoError as error:
        assert "\n" not in checks.one_line(error)


@pytest.mark.parametrize("prog", MAINS)
def test_a_model_folder_that_does_not_load_is_one_line(prog, capsys, tmp_path):
    """What only loading can tell (here: no processor, no weights) is still a one-line error, exit code 2."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    line = refused(prog, [MODEL_FLAG[prog], str(broken)], capsys, tmp_path / "out")
    assert "could not be loaded" in line


def flags_of(main) -> list[str]:
    """Every flag of a CLI's parser (but --help)."""
    from mapo_agent.cli.args import build_parser

    config_class = {train.main: train.TrainConfig, evaluate.main: EvalConfig, visualize.main: VizConfig}[main]
    parser = build_parser(config_class, "fuzz", "")
    return sorted(s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help"))


tokens = st.text(string.ascii_letters + string.digits + "=-_.,/{}[]\":' ", max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(main=st.sampled_from([train.main, evaluate.main, visualize.main]), data=st.data())
def test_fuzzed_command_lines_end_in_a_clean_refusal(main, data, capsys, tmp_path_factory):
    """Random flags and values, then one setting out of range: always exit code 2 and one line, never a traceback."""
    flags = flags_of(main)
    argv = []
    for _ in range(data.draw(st.integers(0, 4))):
        argv += [data.draw(st.sampled_from(flags)), *data.draw(st.lists(tokens, max_size=2))]
    out = tmp_path_factory.mktemp("fuzz") / "out"
    bad = {train.main: ["--steps", "-1"], evaluate.main: ["--k", "0"], visualize.main: ["--episodes", "0"]}[main]
    code = main([*argv, "--output-dir", str(out), *bad])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_eval_dialect_unknown_is_refused_with_the_valid_names(capsys, tmp_path: Path) -> None:
    line = refused("mapo-eval", ["--oracle", "--dialect", "mini-o4"], capsys, tmp_path / "out")
    assert "unknown dialect" in line and "mini_o3" in line and "pixel_reasoner" in line


def test_eval_dialect_reaches_the_env_kwargs(tmp_path: Path) -> None:
    config = EvalConfig(env="MAPO-VStar-v0", dialect="Pixel-Reasoner", oracle=True, num_questions=2)
    config.output_dir = str(tmp_path / "out")
    _, env_kwargs = evaluate.preflight(config)
    assert env_kwargs["dialect"] == "pixel_reasoner"
