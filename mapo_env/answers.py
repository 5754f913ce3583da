"""Multiple-choice options: letters, the prompt listing, and grading a model's answer like a careful judge.

:func:`grade_answer` reads whatever the model put inside ``<answer>…</answer>`` and returns an
:class:`AnswerMatch`: the index of the option it names (or ``None``) and *how* it was matched, one of
:data:`MATCH_KINDS`. :func:`match_answer` returns the index alone. Both are deterministic and never
raise on a ``str``. Real VLMs answer in sentences ("The material of the stool is likely plastic."), so
the grader reads the answer as a careful judge comparing it with the options would.

**Reading the text.** Text is case folded, punctuation and underscores become word breaks (``man's``
-> ``man s``), ``grey``/``colour`` are spelled ``gray``/``color`` and the number words zero to twenty
become digits. A *negation* (``not``, ``no``, ``never``, ``neither``/``nor``, ``n't``, ``without``,
``rather than``, ``instead of``, ``unlikely``...) marks the next three content words as negated, up to
the end of the clause (punctuation, ``but``, ``and``, ``however``...): ``"not plastic"`` does not name
``plastic``, and ``"plastic, not wood"`` names only ``plastic``. Options are read the same way, so an
option that is itself negative (MME-RealWorld's ``"The image does not feature the content."``) is
named by an answer with the same negated words.

Rules, in order (the first that decides wins):

1. **Blank** (after stripping whitespace, quotes, ``*`` and backticks): no match (``"none"``).
2. **Letter.** After dropping a leading ``answer``/``option``/``choice`` phrase (``"Option B"``,
   ``"The answer is (B)"``, ``"Answer: b"``), the answer is a letter alone (``"B"``, ``"(B)"``,
   ``"[B]"``, ``"B."``, ``"B)"``, ``"B:"``) or a letter with text (``"B. text"``, ``"(B) text"``; a bare
   letter then a space, as in ``"A cat"``, is *not* a letter form). When the text after the letter
   names exactly one option by rules 3-5, that option wins, even against the letter: the judge of the
   reference harness compares texts, and real models pair the right text with a wrong letter (DeepEyes
   writes ``"A. <text of option B>"`` in 9 of its 189 V* answers); the kind is then that rule's, or
   ``"letter"`` when the text agrees with the letter. Otherwise the letter decides (``"letter"``) if it
   names one of the options; a letter past the last option falls through to rule 3.
3. **Exact text** (``"text"``): the answer equals one option's text. Two equal options: no match.
4. **Containment** (``"text"``): options whose whole text appears in the answer (most specific kept:
   ``"it is dark red"`` picks ``"dark red"`` over ``"red"``), and options whose text contains the
   answer (``"blue"`` in ``"The cap is blue."``).
5. **Distinguishing words** (``"distinguishing_words"``): the words shared by every option and
   function words are stripped from each option; what is left are its distinguishing words
   (``plastic`` in ``"The material of the stool is plastic."``). An option is named when the answer
   holds all of its distinguishing words, or a content word no other option has. When the options
   differ only in a spatial relation (left/right, above/below, closer...), the objects matter: an
   option is dropped when the answer puts the options' shared words on the other side of the relation
   (``"The bicycle is on the right of the dog"`` does not name ``"The dog is on the right of the
   bicycle"``), and nothing is named when the answer leaves out an object the options share and names
   one they do not (``"on the left of the trees"`` for ``"on the left of the blue van"``).

Rules 4 and 5 are pooled: an option whose distinguishing words are a subset of another named option's
is dropped (``"dark red"`` beats ``"red"``); exactly one option left is the match, otherwise the answer
is ambiguous (``"plastic or wood"``) and matches nothing.

6. **Letter inside a sentence** (``"letter"``), when rules 3-5 name nothing: the answer refers to
   exactly one option letter explicitly, as ``"option C"``, ``"the answer is C"``, ``"choice C"`` or
   ``"(C)"`` (capital letter; ``"I'd go with option C because..."``); a letter stated as *the answer*
   wins over other mentions (``"Option A is wrong, the answer is B"``). A bare capital letter in a
   sentence is not read as a letter: ``"A"`` is also an article.

Examples:
    >>> options = ["The cap is white.", "The cap is blue."]
    >>> match_answer("B", options), match_answer("(a)", options), match_answer("Option B", options)
    (1, 0, 1)
    >>> match_answer("the cap is BLUE", options), match_answer("White", options), match_answer("cap", options)
    (1, 0, None)
    >>> grade_answer("It is most likely blue, not white.", options)
    AnswerMatch(index=1, kind='distinguishing_words')
    >>> grade_answer("A. The cap is blue.", options)
    AnswerMatch(index=1, kind='text')
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal, NamedTuple

from mapo_env.errors import ConfigError, InvalidActionType

MAX_OPTIONS = 26
"""Options are lettered A to Z."""

MatchKind = Literal["letter", "text", "distinguishing_words", "none"]
MATCH_KINDS: tuple[str, ...] = ("letter", "text", "distinguishing_words", "none")
"""How an answer was matched (``info["answer_match"]`` in the environments)."""


class AnswerMatch(NamedTuple):
    """The result of :func:`grade_answer`.

    Attributes:
        index: Index of the named option in the options as shown, or ``None``.
        kind: How it was matched: ``"letter"``, ``"text"``, ``"distinguishing_words"``, or ``"none"``
            (no option, or several: ambiguous).
    """

    index: int | None
    kind: MatchKind


_NO_MATCH = AnswerMatch(None, "none")
_WRAPPING = " \t\r\n\"'`*"
_PREFIX_RE = re.compile(r"(?:the\s+)?(?:(?:correct|final)\s+)?(?:answer|option|choice)\b(?:\s+is)?\s*[:\-]?\s*", re.I)
_LETTER_ALONE_RE = re.compile(r"[(\[]?([A-Za-z])[)\].:]?")
_LETTER_TEXT_RE = re.compile(r"(?:[(\[]([A-Za-z])[)\]][.:]?\s*|([A-Za-z])[.:)]\s+)(\S.*)", re.S)
_NON_WORD_RE = re.compile(r"[\W_]+")
_ANSWER_LETTER_RE = re.compile(
    r"\b(?i:answer)(?:\s+(?i:is|would\s+be|should\s+be))?\s*[:\-]?\s*[(\[]?([A-Z])[)\]]?(?![\w'])"
    r"(?!\s*(?i:or|and|/)\s*[(\[]?[A-Z]\b)"
)
_LETTER_MENTION_RE = re.compile(
    r"(?:\b(?i:answer|option|choice|letter)(?:\s+(?i:is|would\s+be|should\s+be))?\s*[:\-]?\s*"
    r"[(\[]?([A-Z])[)\]]?|[(\[]([A-Z])[)\]])(?![\w'])"
    r"(?!\s*(?i:or|and|/)\s*[(\[]?[A-Z]\b)"
)
_CLAUSE_RE = re.compile(r"[,;:.!?()\[\]{}\n\r\"\u2014\u2013]+")
_NEGATED = "~"  # prefix of a word inside a negation's scope
_NEGATION_SCOPE = 3  # content words a negation covers

_SPELLING = {"grey": "gray", "colour": "color", "colours": "colors", "coloured": "colored"}
_NUMBERS = dict(
    zip(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split(),
        (str(n) for n in range(21)),
    )
)
_NEGATORS = frozenset(
    "not no never neither nor without cannot none unlikely except excluding unlike isnt arent wasnt werent dont "
    "doesnt didnt cant couldnt wont wouldnt shouldnt hasnt havent hadnt aint".split()
)
_NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("other", "than"), ("as", "opposed")})
_CONTRACTED = frozenset(
    "isn aren wasn weren don doesn didn can couldn won wouldn shouldn hasn haven hadn ain mustn needn".split()
)  # "isn't" -> "isn t": the "t" negates only after one of these ("T-shirt" stays a shirt)
_CLAUSE_WORDS = frozenset("but however although though whereas while yet and so because which instead".split())
_FUNCTION_WORDS = frozenset(
    "a an the is are was were be been being am of to and or it its s this that these those there here with by for "
    "as from i we you he she they them his her their my our your me us has have had do does did can could would "
    "should will may might must shall seems seem looks look appears appear likely probably possibly maybe perhaps "
    "think believe definitely clearly answer option choice image picture photo".split()
)
"""Never distinguishing on their own: articles, be/have/do, pronouns, hedges, and words about the question."""
_RELATION_WORDS = frozenset("on in at into onto off over under up down near".split())
"""Prepositions: they count when an option is named by all of its distinguishing words, but no single one
names an option (``"on the right"`` must not name ``"on the left"`` through ``on``)."""
_SPATIAL_WORDS = frozenset(
    "left right above below top bottom front behind back closer farther further nearer near far under over beneath "
    "underneath inside outside beside next between upper lower".split()
)
"""Options that differ only in these words state a relation between objects (V*'s relative_position)."""
_RELATION_FILLERS = frozenset("side sides part hand located positioned situated position camera viewer".split())
"""Shared words a relational answer may leave out (``"left of the dog"`` for ``"on the left side of the dog"``)."""


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

    Same as ``grade_answer(answer, options).index``; the rules are in the module docstring.

    Raises:
        InvalidActionType: ``answer`` is not a ``str``.
        ConfigError: ``options`` has more than 26 entries or a non-``str`` entry.
    """
    return grade_answer(answer, options).index


def grade_answer(answer: str, options: Sequence[str]) -> AnswerMatch:
    """Grade ``answer`` against ``options`` like a careful judge: which option it names, and how.

    Never raises on a ``str`` answer; deterministic; linear in the answer's length.

    Args:
        answer: The model's answer text (usually :attr:`mapo_env.actions.ParsedAction.answer`).
        options: The option texts in the order they were shown (letter A = ``options[0]``).

    Returns:
        An :class:`AnswerMatch` ``(index, kind)``; ``index`` is ``None`` exactly when ``kind == "none"``.

    Raises:
        InvalidActionType: ``answer`` is not a ``str``.
        ConfigError: ``options`` has more than 26 entries or a non-``str`` entry.
    """
    if not isinstance(answer, str):
        raise InvalidActionType(f"match_answer expects the answer as a str, got {type(answer).__name__}.")
    _check_options(options)
    text = answer.strip(_WRAPPING)
    if not text or not options:
        return _NO_MATCH
    grader = _Grader(options)
    letter, after_letter = _letter_form(text)
    if letter is not None:
        by_text = grader.grade_text(after_letter) if after_letter else _NO_MATCH
        if by_text.index is not None:
            return AnswerMatch(by_text.index, "letter") if by_text.index == letter else by_text
        if letter < len(options):
            return AnswerMatch(letter, "letter")
    by_text = grader.grade_text(text)
    return by_text if by_text.index is not None else _letter_mention(text, len(options))


def _check_options(options: Sequence[str]) -> None:
    if isinstance(options, str) or len(options) > MAX_OPTIONS or not all(isinstance(o, str) for o in options):
        raise ConfigError(
            f"options must be a sequence of at most {MAX_OPTIONS} str, got {type(options).__name__} "
            f"{list(options)[: MAX_OPTIONS + 1]!r:.120}."
        )


def _letter_form(text: str) -> tuple[int | None, str | None]:
    """Rule 2's parse: ``(letter index, text after the letter or None)``, or ``(None, None)``."""
    prefix = _PREFIX_RE.match(text)
    candidates = [text, text[prefix.end() :].strip(_WRAPPING)] if prefix and prefix.end() else [text]
    for candidate in candidates:
        alone = _LETTER_ALONE_RE.fullmatch(candidate)
        with_text = None if alone else _LETTER_TEXT_RE.fullmatch(candidate)
        match = alone or with_text
        if match is not None:
            letter = next(g for g in match.groups()[:2] if g)
            return ord(letter.upper()) - ord("A"), with_text.group(3) if with_text else None
    return None, None


def _letter_mention(text: str, num_options: int) -> AnswerMatch:
    """Rule 6: the one option letter the text names explicitly (``"option C"``, ``"(C)"``), if any."""
    letters = {m.group(1) for m in _ANSWER_LETTER_RE.finditer(text) if not _negated_at(text, m.start())}
    if len(letters) != 1:
        mentions = (m for m in _LETTER_MENTION_RE.finditer(text) if not _negated_at(text, m.start()))
        letters = {next(g for g in m.groups() if g) for m in mentions}
    if len(letters) != 1:
        return _NO_MATCH
    index = ord(letters.pop()) - ord("A")
    return AnswerMatch(index, "letter") if index < num_options else _NO_MATCH


def _negated_at(text: str, position: int) -> bool:
    """Whether a negation stands among the three words before ``position`` in its clause (``"not option A"``)."""
    clause = _CLAUSE_RE.split(text[max(0, position - 80) : position].casefold())[-1]
    return any(w in _NEGATORS or w == "t" for w in _NON_WORD_RE.sub(" ", clause).split()[-3:])


def _words(text: str) -> list[str]:
    """Normalised words, negated ones prefixed with ``~`` (see the module docstring)."""
    out: list[str] = []
    for clause in _CLAUSE_RE.split(text.casefold()):
        scope = 0
        words = [_NUMBERS.get(w, _SPELLING.get(w, w)) for w in _NON_WORD_RE.sub(" ", clause).split()]
        for k, word in enumerate(words):
            previous = words[k - 1] if k else ""
            negator = (
                word in _NEGATORS or (word == "t" and previous in _CONTRACTED) or (previous, word) in _NEGATING_PAIRS
            )
            if negator:
                scope = _NEGATION_SCOPE
                out.append(word)
            elif word in _CLAUSE_WORDS:
                scope = 0
                out.append(word)
            elif scope and word not in _FUNCTION_WORDS and word not in _RELATION_WORDS:
                scope -= 1
                out.append(_NEGATED + word)
            else:
                out.append(_NEGATED + word if scope else word)
    return out


def _bare(word: str) -> str:
    return word.lstrip(_NEGATED)


def _is_content(word: str) -> bool:
    bare = _bare(word)
    return bool(bare) and bare not in _FUNCTION_WORDS and bare not in _RELATION_WORDS and bare not in _NEGATORS


class _Grader:
    """The options read once (their words, shared words, distinguishing words), then rules 3-5 on a text."""

    def __init__(self, options: Sequence[str]) -> None:
        self.words = [_words(o) for o in options]
        self.phrases = [" ".join(w) for w in self.words]
        sets = [set(w) for w in self.words]
        self.shared = set.intersection(*sets) if sets else set()
        self.shared_content = {w for w in self.shared if _is_content(w)}
        self.distinct: list[frozenset[str]] = []
        self.unique: list[frozenset[str]] = []
        for i, words in enumerate(sets):
            own = words - self.shared
            distinct = {w for w in own if _is_content(w)} or own
            others = set().union(*(s for j, s in enumerate(sets) if j != i))
            self.distinct.append(frozenset(distinct))
            self.unique.append(frozenset(w for w in distinct - others if _bare(w) not in _RELATION_WORDS))
        self.relational = all(d and all(_bare(w) in _SPATIAL_WORDS for w in d) for d in self.distinct)
        self.objects = self.shared_content - _RELATION_FILLERS
        self.vocabulary = {_bare(w) for words in sets for w in words} | _RELATION_FILLERS

    def grade_text(self, text: str) -> AnswerMatch:
        words = _words(text)
        if not words:
            return _NO_MATCH
        phrase = " ".join(words)
        exact = [i for i, p in enumerate(self.phrases) if p == phrase]
        if exact:
            return AnswerMatch(exact[0], "text") if len(exact) == 1 else _NO_MATCH
        by_text = self._contained(phrase)
        by_words = self._distinguishing(words)
        named = self._most_specific(by_text | by_words)
        if len(named) != 1:
            return _NO_MATCH
        (index,) = named
        return AnswerMatch(index, "text" if index in by_text else "distinguishing_words")

    def _contained(self, phrase: str) -> set[int]:
        """Rule 4: options inside the answer (most specific phrase kept), options around it."""
        padded = f" {phrase} "
        inside = {i for i, p in enumerate(self.phrases) if p and f" {p} " in padded}
        inside = {
            i for i in inside if not any(j != i and f" {self.phrases[i]} " in f" {self.phrases[j]} " for j in inside)
        }
        around = {i for i, p in enumerate(self.phrases) if padded in f" {p} "}
        return inside | around

    def _distinguishing(self, words: list[str]) -> set[int]:
        """Rule 5: options whose distinguishing words the answer holds, on the right side of the shared ones."""
        present = set(words)
        if self.relational and self._other_objects(present):
            return set()
        named = {
            i
            for i in range(len(self.words))
            if (self.distinct[i] and self.distinct[i] <= present) or (self.unique[i] & present)
        }
        if not named or not self.relational:
            return named
        positions: dict[str, list[int]] = {}
        for k, word in enumerate(words):
            if word in self.shared_content or any(word in self.distinct[i] for i in named):
                positions.setdefault(word, []).append(k)
        return {i for i in named if self._same_sides(i, positions)}

    def _other_objects(self, present: set[str]) -> bool:
        """Relational options: the answer leaves out an object they share and names a word no option has."""
        missing = self.objects - present
        extra = {w for w in present if _is_content(w) and not w.startswith(_NEGATED) and w not in self.vocabulary}
        return bool(missing and extra)

    def _same_sides(self, index: int, positions: dict[str, list[int]]) -> bool:
        """False when a shared content word sits before the distinguishing words in one text and after in the other.

        ``positions`` maps the answer's relevant words to where they occur.
        """
        option = self.words[index]
        marks = self.distinct[index]
        answer_at = min((positions[w][0] for w in marks if w in positions), default=None)
        option_at = next((k for k, w in enumerate(option) if w in marks), None)
        if answer_at is None or option_at is None:
            return True
        for word in self.shared_content & positions.keys():
            in_answer = {k < answer_at for k in positions[word]}
            in_option = {k < option_at for k, w in enumerate(option) if w == word}
            if in_option and not in_answer & in_option:
                return False
        return True

    def _most_specific(self, named: set[int]) -> set[int]:
        """Drop an option whose distinguishing words are a strict subset of another named option's."""
        return {i for i in named if not any(j != i and self.distinct[i] < self.distinct[j] for j in named)}
