"""Hugging Face multimodal policies: the Qwen2-VL-family processor, the rollout/training policy, the tiny agent.

- :class:`HFPolicy`: generation across live episodes (token in, token out) and the teacher-forced
  forward pass of :class:`mapo_agent.types.TrainablePolicy`.
- :class:`QwenVLProcessor`: chat template + PIL image processor + placeholder expansion, no torchvision.
- :func:`bundled_model_path`: the tiny untrained Qwen2.5-VL shipped with the package
  (its recipe: ``python tools/build_tiny_agent.py --out DIR``, outside the runtime).
"""

from mapo_agent.policy.episode import EpisodeState
from mapo_agent.policy.hf_policy import HFPolicy
from mapo_agent.policy.processor import QwenVLProcessor
from mapo_agent.policy.tiny import bundled_model_path

__all__ = ["EpisodeState", "HFPolicy", "QwenVLProcessor", "bundled_model_path"]
