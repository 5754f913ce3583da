"""``MAPO-TextSpot-v0``: read small text in a large image (MME-RealWorld style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mapo_env.envs.common import BenchmarkEnv


class TextSpotEnv(BenchmarkEnv):
    """Text spotting: what is written on a small sign, plate or label somewhere in a large image.

    ## Description

    MME-RealWorld (Zhang et al., arXiv 2408.13257) is full of questions whose answer is a few words of
    small text in a high-resolution photo. Procedural scenes place several signs with short words or
    numbers, too small to read in the downsampled view, and ask "What is written on the blue sign?"
    with look-alike options. With ``data_dir`` (an MME-RealWorld or MME-RealWorld-Lite JSON file, or
    its folder; images resolved relative to ``image_root``, default the JSON's folder) the real
    benchmark is served; it has no boxes (see ``envs_data/mme_realworld/README.md``).

    Alignment (default ``"auto"``): ``"clip:tiny"`` on procedural scenes, ``"clip"`` on real data (a
    real CLIP: ``$MAPO_CLIP_MODEL`` or ``openai/clip-vit-base-patch32``; construction fails with a
    :class:`~mapo_env.errors.ConfigError` naming the fixes when its weights are neither local nor
    reachable). The privileged oracles ``"annotation"`` and ``"lexical"`` read ground-truth boxes:
    refused on real data (no boxes), allowed on procedural scenes for ablations. The tiny CLIP cannot
    read the signs' words; it scores colour and kind.

    The loop, spaces, rewards and info are those of :class:`~mapo_env.core.ThinkWithImagesEnv`.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import mapo_env
    >>> env = gym.make("MAPO-TextSpot-v0")
    ```

    | argument | default | meaning |
    |---|---|---|
    | ``data_dir`` | None | MME-RealWorld(-Lite) JSON or folder; None = procedural scenes |
    | ``image_root`` | None | real data: folder the JSON's image paths are relative to |
    | ``split``, ``num_samples``, ``dataset_seed``, ``generator_kwargs`` | | as in ``VStarEnv`` |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release.
    """

    loader = "mapo_env.data.mme_realworld:load_mme_realworld"
    loader_args = ("image_root",)
    generator = "mapo_env.data.procedural:TextSpotSceneGenerator"

    def __init__(
        self, data_dir: str | Path | None = None, *, image_root: str | Path | None = None, **kwargs: Any
    ) -> None:
        self.image_root = image_root
        super().__init__(data_dir, **kwargs)
