"""Adapters that put the MAPO environments inside other RL trainers (TRL, verl).

Each adapter is its own module and imports its library only when used, so ``import mapo_env`` never
pulls in torch, transformers, TRL or verl:

- :mod:`mapo_env.integrations.trl`: an environment class for TRL's
  ``GRPOTrainer(environment_factory=...)``, the outcome and semantic reward functions, a dataset
  builder and a tool-capable chat template for the Qwen2.5-VL family (``pip install "mapo-gym[trl]"``).
- :mod:`mapo_env.integrations.verl`: the zoom ``BaseTool`` and a ``compute_score`` for verl's agent
  loop (``pip install "mapo-gym[verl]"``).

The pieces that need the agent's advantage estimators (the exact-MAPO trainer for TRL, the ``mapo``
estimator registered with verl) live in :mod:`mapo_agent.integrations`, because ``mapo_env`` never
imports ``mapo_agent``. The guide is ``docs/integrations.md``.
"""
