"""The agent-side halves of the TRL and verl adapters (they need this package's advantage estimators).

- :mod:`mapo_agent.integrations.trl`: :class:`~mapo_agent.integrations.trl.MapoGRPOTrainer`, TRL's
  ``GRPOTrainer`` with MAPO's exact advantage, and an image-only Qwen2.5-VL processor that needs no
  torchvision.
- :mod:`mapo_agent.integrations.verl`: the ``mapo`` advantage estimator registered in verl's
  registry, :func:`~mapo_agent.integrations.verl.install` (its ``compute_advantage`` wrapper) and a
  launcher (``python -m mapo_agent.integrations.verl``).
- :mod:`mapo_agent.integrations.processor`: an image-only Qwen2.5-VL processor that loads without
  torchvision (transformers only), used by both.

Importing this package imports neither library; the environment-side halves are in
:mod:`mapo_env.integrations`. Guide: ``docs/integrations.md``.
"""
