"""Fixtures for the alignment-scorer tests: a tiny random CLIP built offline."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def random_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny CLIP folder (model, BPE tokenizer, PIL processor), built offline."""
    pytest.importorskip("sentence_transformers")
    from tools.tiny_clip.model import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("random_clip"), seed=0)


@pytest.fixture(scope="session")
def trained_clip_dir() -> Path:
    """The bundled, trained tiny CLIP."""
    pytest.importorskip("sentence_transformers")
    from mapo_env.alignment.tiny_clip import tiny_clip_path

    return tiny_clip_path()
