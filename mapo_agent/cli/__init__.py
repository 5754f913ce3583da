"""Command-line entry points: ``mapo-train``, ``mapo-eval``, ``mapo-viz``."""
