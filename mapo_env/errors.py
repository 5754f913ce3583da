"""Named errors for *our* failures: API misuse, bad configuration, missing or broken data.

Model output is never an exception: a malformed action becomes a tool message and an
``info["tool_error"]`` code (see :mod:`mapo_env.actions`). The errors below are for the code that
drives the environment: they say what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class MapoError(Exception):
    """Base class of every error raised by ``mapo_env`` and ``mapo_agent``."""


class ResetNeeded(MapoError):
    """``step`` or ``render`` was called before ``reset`` or after the episode ended."""


class InvalidActionType(MapoError, TypeError):
    """The action passed to ``step`` is not a ``str`` (model text); wrap discrete agents with a wrapper."""


class ConfigError(MapoError, ValueError):
    """An environment or trainer argument is out of range or inconsistent with another one."""


class UnknownNameError(MapoError, KeyError):
    """A name (scorer, algorithm, dataset, ...) is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class DependencyNotInstalled(MapoError, ImportError):
    """An optional dependency is missing; the message gives the ``pip install`` line."""


class AlignmentError(MapoError):
    """An alignment scorer failed or returned something that is not one score per request.

    Inside ``env.step`` such a failure is not raised: the step is undone and reported as the tool error
    ``alignment_error`` (see :class:`mapo_env.core.ThinkWithImagesEnv`); it is raised when it persists.
    """


class DatasetError(MapoError):
    """Base class of the data errors; ``path`` is the offending file or folder when known."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{message} [path: {self.path}]" if self.path is not None else message)


class DatasetNotFound(DatasetError):
    """``data_dir`` (or a file a dataset needs) does not exist or holds no sample."""


class CorruptSampleError(DatasetError):
    """An image or annotation file exists but cannot be decoded or does not follow the format."""


class ImageTooLargeError(DatasetError):
    """An image's declared size exceeds ``max_image_pixels`` (decompression-bomb guard)."""


class UnsafePathError(DatasetError):
    """An annotation refers to a file outside ``data_dir`` (path traversal or absolute path)."""


def close_matches_hint(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest known name, or an empty string."""
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""
