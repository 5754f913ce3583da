"""Pre-flight checks of the command lines: everything that can be wrong with the arguments, found in a second.

``mapo-train``, ``mapo-eval`` and ``mapo-viz`` run these before they load a model or play an episode,
so a typo costs a second, not the 15-30 s of loading a model (or, for ``mapo-eval``, a finished
evaluation). Each check raises a named error from :mod:`mapo_env.errors` whose message says what
was wrong and how to fix it; :func:`report_error` prints it as one line on stderr.

Checked: the environment id (registered?), its keyword arguments (accepted by its constructor, then
the environment built once: the constructor validates every value, and the dataset is opened), the
model (an existing folder holding ``config.json``, or a hub id), the output folder (not a file, not
under a file, writable), and the overwrite rule: a command never replaces results that are already
there unless ``--overwrite`` says so.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mapo_agent.cli.args import one_line
from mapo_env.errors import ConfigError, DatasetError, MapoError, UnknownNameError, close_matches_hint

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
"""``organisation/name``, as the Hugging Face Hub spells model ids."""


def report_error(prog: str, error: BaseException) -> int:
    """Print ``<prog>: error: <message>`` as one line on stderr; returns the exit code 2."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return 2


def parse_command_line(cls: type, argv: list[str] | None, prog: str, description: str, epilog: str) -> Any:
    """The dataclass ``cls`` parsed from ``argv``, or the exit code to return: 0 after ``--help``, 2 on an error.

    A usage error or a configuration the dataclass refuses prints one line on stderr (no traceback).
    """
    from mapo_agent.cli.args import parse_dataclass

    try:
        return parse_dataclass(cls, argv, prog, description, epilog)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed on one line
        return stop.code if isinstance(stop.code, int) else 2
    except MapoError as error:
        return report_error(prog, error)


# ------------------------------------------------------------------------------------------ environments
def env_parameters(env_id: str) -> tuple[list[str], bool]:
    """Keyword arguments the constructor of registered ``env_id`` accepts, and whether it takes any (``**kwargs``).

    Follows the ``**kwargs`` of each ``__init__`` up the class hierarchy (a benchmark env forwards the
    core env's arguments), so the list is the union of every level's named parameters.
    """
    import gymnasium as gym

    import mapo_env  # noqa: F401  (registers the MAPO-* ids)

    entry = gym.spec(env_id).entry_point
    target = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    names: list[str] = []
    classes = target.__mro__ if inspect.isclass(target) else (target,)
    for klass in classes:
        init = klass.__init__ if inspect.isclass(klass) else klass
        if inspect.isclass(klass) and "__init__" not in vars(klass):
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return names, True
        open_ended = False
        for p in parameters:
            if p.kind is p.VAR_KEYWORD:
                open_ended = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in ("self", "dataset") and p.name not in names:
                names.append(p.name)
        if not open_ended:
            return names, False
        if not inspect.isclass(klass) or klass is object:
            break
    return names, True


def check_env(env_id: str, env_kwargs: dict[str, Any], flag: str = "--env-kwargs") -> int:
    """Check that ``env_id`` is registered and ``gym.make(env_id, **env_kwargs)`` works; returns the dataset size.

    Unknown keyword arguments are refused with the list of accepted ones; then the environment is
    built once (cheap: procedural scenes are drawn lazily, real data is indexed, alignment models
    load on first use) so that its constructor validates the values, and closed.

    Raises:
        UnknownNameError: ``env_id`` is not registered (the message lists the MAPO ids).
        ConfigError: A keyword argument is unknown or its value is refused.
        DatasetError: ``data_dir`` is missing or broken.
    """
    import gymnasium as gym

    import mapo_env

    if env_id not in gym.registry:
        raise UnknownNameError(
            f"unknown environment id {env_id!r}; the MAPO ids are {', '.join(mapo_env.ENV_IDS)}."
            + close_matches_hint(env_id, list(gym.registry))
        )
    entry = gym.spec(env_id).entry_point
    target = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    if inspect.isclass(target) and not issubclass(target, mapo_env.ThinkWithImagesEnv):
        raise ConfigError(
            f"{env_id} is not a thinking-with-images environment; use one of {', '.join(mapo_env.ENV_IDS)}"
        )
    accepted, open_ended = env_parameters(env_id)
    if not open_ended:
        for key in env_kwargs:
            if key not in accepted:
                raise ConfigError(
                    f"{flag}: {env_id} has no argument {key!r}.{close_matches_hint(key, accepted)} "
                    f"It accepts: {', '.join(accepted)}."
                )
    try:
        env = gym.make(env_id, **env_kwargs)
    except DatasetError:  # the message names the path
        raise
    except MapoError as error:
        if type(error) in (ConfigError, UnknownNameError):  # say which flag it came from
            raise type(error)(f"{flag} {env_id}: {error}") from error
        raise
    except Exception as error:  # a value the constructor did not expect: still the user's argument, one line
        raise ConfigError(
            f"{flag}: gym.make({env_id!r}, ...) refused the arguments {_short(env_kwargs)}: "
            f"{type(error).__name__}: {_short(error)}"
        ) from error
    try:
        dataset = getattr(env.unwrapped, "dataset", None)
        if dataset is None:
            raise ConfigError(
                f"{env_id} is not a thinking-with-images environment (no dataset of questions); "
                f"use one of {', '.join(mapo_env.ENV_IDS)}"
            )
        return len(dataset)
    finally:
        env.close()


def _short(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# ---------------------------------------------------------------------------------------------- models
def check_model(name_or_path: str | None, flag: str = "--model") -> None:
    """Check that a model argument names an existing model folder or a Hugging Face Hub id.

    ``None`` (the bundled agent) passes. An existing path must be a folder holding ``config.json``;
    a path that does not exist passes only if it reads as a hub id (``organisation/name``, not
    starting in an existing local folder), and, when the hub is switched off (``HF_HUB_OFFLINE``),
    only if that id is in the local cache.

    Raises:
        ConfigError: What is wrong, with the likely fix (e.g. a run folder instead of its ``final/``).
    """
    if name_or_path is None:
        return
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{flag} {text!r} is a file; give a model folder (holding config.json) or a hub id")
        if not (path / "config.json").is_file():
            hint = ""
            if (path / "final" / "config.json").is_file():
                hint = f" This looks like a training run: its model is {path / 'final'}."
            raise ConfigError(f"{flag} {text!r} has no config.json, so it is not a model folder.{hint}")
        return
    first = Path(text.split("/", 1)[0]).expanduser()
    local_looking = text.startswith((".", "/", "~")) or (first.is_dir() and "/" in text)
    if local_looking or not _HUB_ID.match(text):
        raise ConfigError(
            f"{flag} {text!r}: no such folder (and not a hub id of the form organisation/name); "
            "give a model folder, e.g. a training run's final/, or a hub id"
        )
    if _hub_offline() and not _in_hub_cache(text):
        raise ConfigError(
            f"{flag} {text!r} is not in the local Hugging Face cache and the hub is switched off "
            "(HF_HUB_OFFLINE); download it first or give a local folder"
        )


@contextlib.contextmanager
def model_loading(flag: str, name_or_path: str | None) -> Iterator[None]:
    """Turn a model loader's ``OSError`` / ``ValueError`` (unknown hub id, broken checkpoint) into a named error.

    The checks above catch what a path can tell; this catches what only loading can (a hub id that
    does not exist, weights that do not match the config), still as one line.
    """
    try:
        yield
    except (OSError, ValueError) as error:
        if isinstance(error, MapoError):
            raise
        shown = "the bundled agent" if name_or_path is None else repr(str(name_or_path))
        raise ConfigError(f"{flag} {shown} could not be loaded: {type(error).__name__}: {_short(error)}") from error


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in
               ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))  # fmt: skip


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


# --------------------------------------------------------------------------------------------- outputs
def check_output_dir(directory: str | Path, flag: str = "--output-dir") -> Path:
    """Check that ``directory`` can be created (or exists) and written to; creates nothing.

    Raises:
        ConfigError: It is a file, it lies under a file, or the folder it would be created in (or it,
            if it exists) is not writable.
    """
    path = Path(directory).expanduser()
    if str(directory).strip() == "":
        raise ConfigError(f"{flag} is empty; give a folder")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(directory)!r} is a file, not a folder")
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {str(directory)!r} lies under {str(existing)!r}, which is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        where = "it" if existing == path.absolute() else f"its nearest existing parent {str(existing)!r}"
        raise ConfigError(
            f"{flag} {str(directory)!r} is not writable ({where}: {error.strerror or error}); choose another folder"
        ) from error
    return path


def existing_outputs(directory: str | Path, patterns: Iterable[str]) -> list[Path]:
    """Entries of ``directory`` matching any of the glob ``patterns`` (sorted; none if it does not exist)."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        return []
    return sorted({p for pattern in patterns for p in path.glob(pattern)})


def refuse_overwrite(directory: str | Path, patterns: Iterable[str], alternative: str = "") -> None:
    """Raise unless ``directory`` holds nothing matching ``patterns`` (the overwrite rule of the CLIs).

    Raises:
        ConfigError: Names the first files found and the way out (``--overwrite`` or another folder).
    """
    found = existing_outputs(directory, patterns)
    if found:
        names = ", ".join(p.name for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ConfigError(
            f"{str(directory)!r} already holds {names} from an earlier run; pass --overwrite to replace "
            f"them{alternative}, or choose another --output-dir"
        )


def remove_outputs(directory: str | Path, patterns: Iterable[str]) -> list[Path]:
    """Delete the entries of ``directory`` matching ``patterns`` (files and folders); returns them."""
    found = existing_outputs(directory, patterns)
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return found
