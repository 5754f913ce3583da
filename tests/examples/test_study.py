"""The example studies' shared helpers (``examples/study.py``): method variants, statistics, README blocks."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
import study  # noqa: E402


def test_a_method_is_an_algorithm_with_optional_config_fields():
    assert study.parse_method("grpo") == ("grpo", {})
    assert study.parse_method("roma:consistency_coef=0.5,num_views=3,corruptions=jpeg") == (
        "roma",
        {"consistency_coef": 0.5, "num_views": 3, "corruptions": "jpeg"},
    )
    assert study.method_dir(Path("out"), "roma:consistency_coef=0.5") == Path("out/roma-consistency_coef=0.5")
    with pytest.raises(SystemExit, match="key=value"):
        study.parse_method("roma:consistency_coef")


def test_mean_ci_is_the_t_interval():
    mean, half = study.mean_ci([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert study.mean_ci([0.5]) == (0.5, pytest.approx(float("nan"), nan_ok=True))
    assert study.cell([None]) == "–" and study.cell([0.5]) == "0.500"


def test_paired_difference_uses_common_seeds_only():
    assert study.paired_difference({0: 0.5}, {0: 0.4}) == "fewer than 2 common seeds"
    text = study.paired_difference({0: 0.5, 1: 0.7, 2: 0.6}, {0: 0.4, 1: 0.5, 5: 0.0})
    assert text.startswith("+0.150 ± ") and "2 seeds" in text


def test_publish_block_replaces_only_its_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- demo:begin -->\nold\n<!-- demo:end -->\ntail\n", encoding="utf-8")
    figure = tmp_path / "curve.png"
    figure.write_bytes(b"png")
    study.publish_block("demo", "| a |\n", [figure, tmp_path / "missing.png"], readme)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("head\n<!-- demo:begin -->\n| a |\n") and text.endswith("<!-- demo:end -->\ntail\n")
    assert "old" not in text and "![curve](docs/images/demo_curve.png)" in text
    assert (tmp_path / "docs/images/demo_curve.png").read_bytes() == b"png"
    with pytest.raises(SystemExit, match="other:begin"):
        study.publish_block("other", "x", [], readme)
