"""Reading predictions and ground truths: the answer block, time spans, option letters, numbers.

Ground truths are never `eval`'d (VITAL does): strings go through `ast.literal_eval` only.
"""

from __future__ import annotations

import ast
import math
import re

Span = tuple[float, float]

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# VITAL's time regex, verbatim (docs/method.md §2): plain non-negative numbers, so "-5" reads as 5.
_TIME_NUMBER = re.compile(r"\b(\d+\.\d+\b|\b\d+)\b")
_SENTENCE_BREAK = re.compile(r"[!?\n]")
_FLOAT = re.compile(r"[-+]?(?:\d*\.\d+|\d+)")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LITERAL_MAX_CHARS = 10_000  # literal_eval on huge or deeply nested strings is slow and can recurse too deep

# Union of VITAL's lists (video_r1/gqa rewards, GQA/VQA eval), longest first so "The answer is" goes before
# "The answer".
MCQ_PREFIXES = (
    "The best answer is", "The correct answer is", "The best option is", "The correct option is",
    "The answer is", "The answer", "Best answer:", "Best option:", "Answer", "From",
)
# A capital that is a word by itself ("C", "(C)", "C.", "C:"), never the first letter of a word ("Option" is no O)
_LONE_CAPITAL = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9'’])")
_ENGLISH_WORD = re.compile(r"\s+[a-z]")  # "A dog", "I think": the one-letter English words, not options


class MalformedSolution(ValueError):
    """The ground truth cannot be scored (scored as an error result, never raised to the caller)."""


def answer_text(text: str) -> str | None:
    """Content of the first `<answer>` block (VITAL's `extract_answer`), or None when there is none."""
    m = _ANSWER.search(text)
    return m.group(1) if m else None


def answer_or_text(text: str) -> str:
    """What MCQ/numeric/ROUGE/WER read: the `<answer>` content, or the whole text without one (as VITAL)."""
    found = answer_text(text)
    return text if found is None else found


def _time_pairs(text: str):
    """Yield (start, end, char_start, char_end) for consecutive number pairs, sentence by sentence."""
    offset = 0
    for sentence in _SENTENCE_BREAK.split(text):
        nums = list(_TIME_NUMBER.finditer(sentence))
        for a, b in zip(nums[0::2], nums[1::2]):
            yield float(a.group(1)), float(b.group(1)), offset + a.start(), offset + b.end()
        offset += len(sentence) + 1  # the one-character separator


def _last_valid_pair(text: str):
    best = None
    for pair in _time_pairs(text):
        if pair[1] >= pair[0]:
            best = pair
    return best


def extract_time_range(text: str) -> Span | None:
    """VITAL's rule: split on [!?\\n], pair numbers consecutively per sentence, keep the LAST pair with
    end >= start; None when there is none (VITAL's (-1, -1))."""
    pair = _last_valid_pair(text)
    return None if pair is None else (pair[0], pair[1])


def all_time_ranges(text: str) -> list[Span]:
    """Every valid (end >= start) consecutive number pair, sentence by sentence: a multi-span answer."""
    return [(s, e) for s, e, _, _ in _time_pairs(text) if e >= s]


def split_span(text: str) -> tuple[str, Span | None]:
    """(text with the span's numbers cut out, span) - how a GQA ground-truth string yields its answer part."""
    pair = _last_valid_pair(text)
    if pair is None:
        return text, None
    return text[:pair[2]] + text[pair[3]:], (pair[0], pair[1])


def safe_literal(text: str):
    """`ast.literal_eval` for bracketed literals only; anything else (or a failure) returns the text itself."""
    s = text.strip()
    if not s or s[0] not in "[({" or len(s) > _LITERAL_MAX_CHARS:
        return text
    try:
        return ast.literal_eval(s)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def as_pair(value) -> Span | None:
    if hasattr(value, "tolist"):  # numpy / torch
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    try:
        s, e = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    return (s, e) if math.isfinite(s) and math.isfinite(e) else None


def parse_span(gt) -> Span:
    """A ground-truth span from [s, e], "[s, e]" or free text (its last valid number pair).

    Raises MalformedSolution when there is none or it is reversed (VITAL scored reversed ones 0 silently)."""
    if isinstance(gt, str):
        value = safe_literal(gt)
        span = as_pair(value) if value is not gt else None
        if span is None and not isinstance(value, (list, tuple, dict)):
            span = extract_time_range(gt)
    else:
        span = as_pair(gt)
    if span is None:
        raise MalformedSolution(f"no [start, end] span in {short_repr(gt)}")
    if span[1] < span[0]:
        raise MalformedSolution(f"span {list(span)} ends before it starts")
    return span


def mcq_letter(text: str, letters: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ") -> str | None:
    """The option letter of an answer: VITAL's answer prefixes stripped, then the first capital in `letters` that
    stands alone ("Option C", "I think the answer is C" and "(C) cat" all read C). VITAL took the first capital
    of any word ("Option C" -> O); a lone "A"/"I" followed by a lowercase word is the English word, skipped."""
    s = text.strip()
    for prefix in MCQ_PREFIXES:
        s = s.replace(prefix, "")
    for m in _LONE_CAPITAL.finditer(s):
        letter = m.group(1)
        if letter in letters and not (letter in "AI" and _ENGLISH_WORD.match(s, m.end())):
            return letter
    return None


def first_float(text: str) -> float | None:
    """First signed decimal number ("1,234.5" reads as 1234.5); None if absent or not finite.

    VITAL's regex `[-+]?\\d*\\.\\d+|\\d+` dropped the sign of integers ("-3" read as 3); this keeps it."""
    m = _FLOAT.search(_THOUSANDS_COMMA.sub("", text))
    if m is None:
        return None
    value = float(m.group(0))
    return value if math.isfinite(value) else None


def as_number(value) -> float | None:
    """A ground-truth number: numbers as is, strings through `first_float`."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            value = float(value)
        except OverflowError:  # an int too large for a float
            return None
        return value if math.isfinite(value) else None
    return first_float(value) if isinstance(value, str) else None


def short_repr(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
