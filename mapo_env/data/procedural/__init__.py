"""Procedural scene generators: deterministic from a seed, with exact ground truth.

Each generator follows :class:`mapo_env.data.base.SceneGenerator` (``name``,
``generate(rng, index) -> VQASample``); wrap one in :class:`mapo_env.data.base.ProceduralDataset`
to get an indexable dataset. See ``envs_data/procedural/README.md`` for what each one draws.

* :class:`VStarSceneGenerator`: V* Bench look-alike (attribute / relative position, tiny targets).
* :class:`HRBenchSceneGenerator`: HR-Bench look-alike at 4K or 8K (single / cross instance).
* :class:`TextSpotSceneGenerator`: MME-RealWorld-style OCR of small signs, tags and plates.
* :class:`TilesSceneGenerator`: the small fast scenes for CPU training (224 px, zoom required).
"""

from mapo_env.data.procedural.hrbench_like import HRBenchSceneGenerator
from mapo_env.data.procedural.textspot import TextSpotSceneGenerator
from mapo_env.data.procedural.tiles import PATTERNS, TilesSceneGenerator
from mapo_env.data.procedural.vstar_like import VStarSceneGenerator

__all__ = ["PATTERNS", "HRBenchSceneGenerator", "TextSpotSceneGenerator", "TilesSceneGenerator", "VStarSceneGenerator"]
