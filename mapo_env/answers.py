"""Multiple-choice options: letters, the prompt listing, and matching a model's answer to an option.

:func:`match_answer` reads whatever the model put inside ``<answer>…</answer>`` and returns the index
of the option it names, or ``None``. It never raises on a ``str``. Rules, in order (the first that
decides wins):

1. **Blank** (after stripping whitespace, quotes, ``*`` and backticks): ``None``.
2. **Letter.** After dropping a leading ``answer``/``option``/``choice`` phrase (``"Option B"``,
   ``"The answer is (B)"``, ``"Answer: b"``), the answer is a letter alone (``"B"``, ``"b"``, ``"(B)"``,
   ``"[B]"``, ``"B."``, ``"B)"``, ``"B:"``) or a letter with its text (``"B. text"``, ``"B) text"``,
   ``"(B) text"``; a bare letter then a space, as in ``"A cat"``, is *not* a letter form). When the text
   after the letter is exactly (rule 3) one option's text, that option wins, even against the letter: a
   whole option text is more specific than one character, and real models pair the right text with a
   wrong letter (DeepEyes writes ``"A. <text of option B>"`` in 9 of its 189 V* answers). Otherwise the
   letter decides if it names one of the options (a paraphrase after it is fine); a letter past the last
   option (``"E"`` with four options) falls through to rule 3.
3. **Exact text.** The answer equals one option's text after normalisation (case folded, punctuation and
   underscores turned into spaces, whitespace collapsed): that option. Two options that normalise alike:
   ``None``.
4. **Containment**, on normalised text and whole words: the options whose text appears in the answer
   (keeping only the most specific: an option contained in another candidate is dropped, so
   ``"it is dark red"`` picks ``"dark red"`` over ``"red"``), together with the options whose text contains
   the answer (``"blue"`` in ``"The cap is blue."``). Exactly one: that option; none or several: ``None``.

Examples:
    >>> options = ["The cap is white.", "The cap is blue."]
    >>> match_answer("B", options), match_answer("(a)", options), match_answer("Option B", options)
    (1, 0, 1)
    >>> match_answer("the cap is BLUE", options), match_answer("White", options), match_answer("cap", options)
    (1, 0, None)
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from mapo_env.errors import ConfigError, InvalidActionType

MAX_OPTIONS = 26
"""Options are lettered A to Z."""

_WRAPPING = " \t\r\n\"'`*"
_PREFIX_RE = re.compile(r"(?:the\s+)?(?:(?:correct|final)\s+)?(?:answer|option|choice)\b(?:\s+is)?\s*[:\-]?\s*", re.I)
_LETTER_ALONE_RE = re.compile(r"[(\[]?([A-Za-z])[)\].:]?")
_LETTER_TEXT_RE = re.compile(r"(?:[(\[]([A-Za-z])[)\]][.:]?\s*|([A-Za-z])[.:)]\s+)(\S.*)", re.S)
_NON_WORD_RE = re.compile(r"[\W_]+")


def option_letters(n: int) -> tuple[str, ...]:
    """The letters of ``n`` options: ``option_letters(3) == ("A", "B", "C")``.

    Raises:
        ConfigError: ``n`` is not an int in ``[0, 26]``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_OPTIONS:
        raise ConfigError(f"option_letters expects an int number of options in [0, {MAX_OPTIONS}], got {n!r}.")
    return tuple(string.ascii_uppercase[:n])


def format_options(options: Sequence[str]) -> str:
    """The options as the prompt lists them, one ``"<letter>. <text>"`` line each.

    Example:
        >>> print(format_options(["red", "blue"]))
        A. red
        B. blue

    Raises:
        ConfigError: more than 26 options, or an option that is not a ``str``.
    """
    _check_options(options)
    return "\n".join(f"{letter}. {text}" for letter, text in zip(option_letters(len(options)), options))


def match_answer(answer: str, options: Sequence[str]) -> int | None:
    """The index of the option ``answer`` names, or ``None`` (no match, ambiguous, contradictory).

    Never raises on a ``str`` answer; the rules and their order are in the module docstring.

    Args:
        answer: The model's answer text (usually :attr:`mapo_env.actions.ParsedAction.answer`).
        options: The option texts in the order they were shown (letter A = ``options[0]``).

    Returns:
        An index into ``options``, or ``None``.

    Raises:
        InvalidActionType: ``answer`` is not a ``str``.
        ConfigError: ``options`` has more than 26 entries or a non-``str`` entry.
    """
    if not isinstance(answer, str):
        raise InvalidActionType(f"match_answer expects the answer as a str, got {type(answer).__name__}.")
    _check_options(options)
    text = answer.strip(_WRAPPING)
    if not text:
        return None
    normalized_options = [_normalize(option) for option in options]
    by_letter = _match_letter(text, normalized_options)
    if by_letter is not None:
        return by_letter if by_letter >= 0 else None
    normalized = _normalize(text)
    exact = _exact(normalized, normalized_options)
    if exact is not None:
        return exact if exact >= 0 else None
    return _contained(normalized, normalized_options)


def _check_options(options: Sequence[str]) -> None:
    if isinstance(options, str) or len(options) > MAX_OPTIONS or not all(isinstance(o, str) for o in options):
        raise ConfigError(
            f"options must be a sequence of at most {MAX_OPTIONS} str, got {type(options).__name__} "
            f"{list(options)[: MAX_OPTIONS + 1]!r:.120}."
        )


def _normalize(text: str) -> str:
    return " ".join(_NON_WORD_RE.sub(" ", text.casefold()).split())


def _match_letter(text: str, normalized_options: list[str]) -> int | None:
    """Rule 2: an index, ``-1`` for text naming several options, ``None`` when the answer is no letter form."""
    prefix = _PREFIX_RE.match(text)
    candidates = [text, text[prefix.end() :].strip(_WRAPPING)] if prefix and prefix.end() else [text]
    for candidate in candidates:
        alone = _LETTER_ALONE_RE.fullmatch(candidate)
        with_text = None if alone else _LETTER_TEXT_RE.fullmatch(candidate)
        match = alone or with_text
        if match is None:
            continue
        by_text = _exact(_normalize(with_text.group(3)), normalized_options) if with_text else None
        if by_text is not None:
            return by_text
        index = ord(next(g for g in match.groups()[:2] if g).upper()) - ord("A")
        return index if index < len(normalized_options) else None
    return None


def _exact(normalized: str, normalized_options: list[str]) -> int | None:
    """Rule 3: the index of the one option equal to ``normalized``, ``-1`` if several, else ``None``."""
    hits = [i for i, option in enumerate(normalized_options) if option == normalized]
    if not hits:
        return None
    return hits[0] if len(hits) == 1 else -1


def _contained(normalized: str, normalized_options: list[str]) -> int | None:
    """Rule 4: unique whole-word containment either way, most specific option first."""
    padded = f" {normalized} "
    inside = [i for i, o in enumerate(normalized_options) if o and f" {o} " in padded]
    inside = [
        i
        for i in inside
        if not any(j != i and f" {normalized_options[i]} " in f" {normalized_options[j]} " for j in inside)
    ]
    around = [i for i, o in enumerate(normalized_options) if normalized and padded in f" {o} "]
    hits = sorted(set(inside) | set(around))
    return hits[0] if len(hits) == 1 else None
