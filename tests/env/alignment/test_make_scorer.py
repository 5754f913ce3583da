import math
import re
import subprocess
import sys

import pytest

from mapo_env.alignment import (
    SCORERS,
    AlignmentRequest,
    AlignmentScorer,
    AnnotationScorer,
    CallableScorer,
    ClipScorer,
    GuardedScorer,
    LexicalScorer,
    make_scorer,
)
from mapo_env.errors import ConfigError, UnknownNameError
from tests.env.alignment.helpers import request


def test_registry_names():
    assert set(SCORERS) == {"lexical", "annotation", "clip"}
    assert isinstance(make_scorer("lexical"), LexicalScorer)
    assert isinstance(make_scorer("annotation"), AnnotationScorer)
    assert isinstance(make_scorer("Lexical "), LexicalScorer)


def test_names_build_without_loading_models():
    # construction is lazy: no model is loaded until the first score
    scorer = make_scorer("clip", model="some/hub-id-never-loaded")
    assert isinstance(scorer, ClipScorer)
    assert scorer.model == "some/hub-id-never-loaded"


def test_clip_with_model_suffix(trained_clip_dir):
    scorer = make_scorer("clip:tiny")
    assert isinstance(scorer, ClipScorer)
    assert scorer.model == str(trained_clip_dir)
    assert make_scorer("clip:org/other-clip").model == "org/other-clip"
    assert make_scorer("annotation:/some/folder").model == "/some/folder"


def test_kwargs_reach_the_scorer():
    assert make_scorer("lexical", generic_guard=False).generic_guard is False
    assert make_scorer("clip:x", normalization="affine").normalization == "affine"


def test_unknown_name_lists_names_and_hint():
    with pytest.raises(UnknownNameError, match=re.escape("known: lexical, annotation, clip. Did you mean 'clip'?")):
        make_scorer("clpi")
    with pytest.raises(KeyError):  # UnknownNameError is also a KeyError
        make_scorer("bleu")


@pytest.mark.parametrize("spec", ["lexical:model", "clip:", "annotation:  "])
def test_bad_model_suffix(spec):
    with pytest.raises(ConfigError, match="take a model after ':'"):
        make_scorer(spec)


def test_model_given_twice():
    with pytest.raises(ConfigError, match="keep one"):
        make_scorer("clip:a", model="b")


def test_scorer_object_returned_as_is():
    scorer = LexicalScorer()
    assert make_scorer(scorer) is scorer
    assert isinstance(scorer, AlignmentScorer)
    with pytest.raises(ConfigError, match="configure the object"):
        make_scorer(scorer, generic_guard=False)


@pytest.mark.parametrize("spec", [3, None, 1.5, ["lexical"]])
def test_bad_spec_type(spec):
    with pytest.raises(ConfigError, match="must be a name"):
        make_scorer(spec)


def test_callable_wrapped_and_mapped_into_unit_interval():
    values = iter([0.25, math.nan, math.inf, -math.inf, -3.0, 7, 1])
    scorer = make_scorer(lambda req: next(values))
    assert isinstance(scorer, CallableScorer)
    assert scorer.score_batch([request("a")] * 7) == [0.25, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_callable_receives_the_original_request_and_guard_is_off_by_default():
    seen: list[AlignmentRequest] = []

    def fn(req):
        seen.append(req)
        return 0.5

    req = request("")
    assert make_scorer(fn).score(req) == 0.5
    assert seen == [req]
    assert make_scorer(fn, generic_guard=True).score(request("the object")) == 0.0


def test_callable_exceptions_propagate():
    def broken(req):
        raise ZeroDivisionError("user bug")

    with pytest.raises(ZeroDivisionError, match="user bug"):
        make_scorer(broken).score(request("red tile"))


@pytest.mark.parametrize("bad", [None, "0.5", [0.5], True])
def test_callable_non_number_result(bad):
    with pytest.raises(ConfigError, match="must return a float"):
        make_scorer(lambda req: bad).score(request("red tile"))


def test_guarded_scorer_wraps_foreign_scorers():
    class Foreign:
        name = "foreign"

        def score_batch(self, requests):
            return [0.9 for _ in requests]

    guarded = GuardedScorer(Foreign())
    assert guarded.name == "foreign"
    assert guarded.score_batch([request("red tile"), request("the image"), request("")]) == [0.9, 0.0, 0.0]


def test_requests_are_checked():
    scorer = LexicalScorer()
    with pytest.raises(ConfigError, match="pass \\[request\\]"):
        scorer.score_batch(request("x"))
    with pytest.raises(ConfigError, match="item 1 is dict"):
        scorer.score_batch([request("x"), {"text": "y"}])
    with pytest.raises(ConfigError, match="must be a str"):
        scorer.score_batch([request(None)])  # type: ignore[arg-type]


def test_importing_alignment_does_not_import_torch():
    code = (
        "import sys, mapo_env.alignment as a; a.make_scorer('clip'); a.make_scorer('annotation');"
        "bad = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
