"""Text helpers shared by the scorers: cleaning model text, content words, and the generic-label guard.

Model text is data: every function here accepts any ``str`` (empty, megabytes long, lone surrogates,
control or bidi characters, emoji) and never raises.

Content words (:func:`content_words`) are lower-case letter runs, with a tiny stop-word list
removed, simple plural stripping (``tiles`` -> ``tile``, ``boxes`` -> ``box``, ``berries`` ->
``berry``) and a synonym table that maps spellings of one colour or pattern to one word
(``gray`` -> ``grey``, ``stripes`` / ``stripy`` -> ``striped``, ``checkerboard`` -> ``checkered``).

The generic-label guard (against label hacking of a MAPO-style reward): a description made only of generic
words (``"object"``, ``"the image"``, ``"a region"``, ``"something"``, ``"text"``) matches any crop
a little, so an RL policy can farm alignment with it. :func:`guard_blocks` says when such a
description must score 0: whenever the description is generic, unless the reference caption is
known (non-empty) and is itself generic.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TEXT_CHARS = 2000
"""Descriptions are cut to this many characters before scoring (a label is a phrase; CLIP reads 77 tokens)."""

STOP_WORDS = frozenset(
    """
    a an the this that these those there here it its it's is are was were be been being am
    of with without and or but in on at to from by for as into onto over under near next
    i you we they he she me my our your their his her them us
    see sees seen saw show shows showing shown contain contains containing looks look looking like
    appears appear seems seem visible probably maybe perhaps likely some any one very quite
    can could would should will just also then so than which who what where when how
    """.split()
)
"""Function words and description fillers ignored when comparing words."""

GENERIC_WORDS = frozenset(
    """
    object thing item image picture photo photograph region area part stuff something anything
    nothing everything crop cropped zoom zoomed view detail content scene section patch portion
    piece element target text shape unknown unclear
    """.split()
)
"""Words that name no attribute and no specific object (after plural stripping: ``objects`` -> ``object``)."""

SYNONYMS = {
    # colours
    "gray": "grey",
    "greyish": "grey",
    "grayish": "grey",
    "aqua": "cyan",
    "fuchsia": "magenta",
    "violet": "purple",
    "reddish": "red",
    "bluish": "blue",
    "greenish": "green",
    "yellowish": "yellow",
    # patterns
    "stripe": "striped",
    "stripy": "striped",
    "stripey": "striped",
    "checker": "checkered",
    "checkerboard": "checkered",
    "chequered": "checkered",
    "chequerboard": "checkered",
    "checked": "checkered",
    "horizontally": "horizontal",
    "vertically": "vertical",
    "solid": "plain",
}
"""One spelling per colour and pattern (applied after plural stripping)."""

_WORD_RE = re.compile(r"[^\W\d_]+")


def clean_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Make model text safe to tokenise and compare.

    Cuts to ``max_chars`` characters, replaces lone surrogates (which tokenizers cannot encode),
    applies NFKC, turns control and format characters into spaces and collapses whitespace.

    Args:
        text: Any string.
        max_chars: Characters kept from the start of ``text``.

    Returns:
        The cleaned text, possibly empty.
    """
    text = text[:max_chars].encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


def normalize_word(word: str) -> str:
    """Lower-case ``word``, strip a plural ending and map colour/pattern synonyms to one spelling."""
    word = word.lower()
    word = SYNONYMS.get(word, word)
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses", "zes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return SYNONYMS.get(word, word)


def content_words(text: str) -> list[str]:
    """Normalised words of ``text`` that are not stop words, in order (duplicates kept).

    Example:
        >>> content_words("The crop shows two Gray umbrellas, with stripes!")
        ['crop', 'two', 'grey', 'umbrella', 'striped']
    """
    words = (normalize_word(w) for w in _WORD_RE.findall(text.lower()))
    return [w for w in words if w and w not in STOP_WORDS]


def is_generic_label(text: str) -> bool:
    """Whether ``text`` names nothing specific: it is empty or all its content words are generic.

    Example:
        >>> is_generic_label("the image"), is_generic_label("Objects."), is_generic_label("red flag")
        (True, True, False)
    """
    return all(w in GENERIC_WORDS for w in content_words(text))


def guard_blocks(description: str, reference: str) -> bool:
    """Whether the generic-label guard forces a description's score to 0.

    Args:
        description: The (cleaned) description.
        reference: The reference caption from the annotations, ``""`` when none is known.

    Returns:
        ``True`` when the description is generic and the reference is not a known generic caption
        (a generic description of a crop whose annotation is itself generic is left alone).
    """
    if not is_generic_label(description):
        return False
    return not (reference and is_generic_label(reference))
