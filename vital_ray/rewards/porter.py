"""Porter stemmer (Porter 1980, with NLTK's default "NLTK_EXTENSIONS" tweaks), for ROUGE with stemming.

VITAL scores free-form answers with `rouge_score(use_stemmer=True)`, which stems with NLTK's PorterStemmer;
this re-implements that so no NLP dependency is needed. Words are expected lower-case.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Optional

Rule = tuple[str, str, Optional[Callable[[str], bool]]]

_IRREGULAR = {
    "skies": "sky", "sky": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
    "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
    "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed", "exceed": "exceed",
    "succeed": "succeed",
}


def _cv_pattern(word: str) -> str:
    """'c'/'v' per letter; y is a vowel after a consonant (iterative: model output may hold "yyyy...")."""
    out: list[str] = []
    for ch in word:
        if ch in "aeiou":
            out.append("v")
        elif ch == "y":
            out.append("v" if out and out[-1] == "c" else "c")
        else:
            out.append("c")
    return "".join(out)


def _is_consonant(word: str, i: int) -> bool:
    return _cv_pattern(word[:i + 1])[-1] == "c"


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: the number of vowel-to-consonant transitions."""
    return _cv_pattern(stem).count("vc")


def _has_vowel(stem: str) -> bool:
    return "v" in _cv_pattern(stem)


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_consonant(word, len(word) - 1)


def _ends_cvc(word: str) -> bool:
    """*o: consonant-vowel-consonant, the last not w, x or y (NLTK also accepts a 2-letter vowel-consonant)."""
    if len(word) >= 3:
        return (_is_consonant(word, len(word) - 3) and not _is_consonant(word, len(word) - 2)
                and _is_consonant(word, len(word) - 1) and word[-1] not in "wxy")
    return len(word) == 2 and not _is_consonant(word, 0) and _is_consonant(word, 1)


def _m_positive(stem: str) -> bool:
    return _measure(stem) > 0


def _m_above_one(stem: str) -> bool:
    return _measure(stem) > 1


def _apply_first(word: str, rules: list[Rule]) -> str:
    """The first rule whose suffix matches decides: replace if its condition holds, else leave the word."""
    for suffix, replacement, condition in rules:
        if suffix == "*d":
            if not _ends_double_consonant(word):
                continue
            stem = word[:-2]
        elif word.endswith(suffix):
            stem = word[:len(word) - len(suffix)]
        else:
            continue
        return stem + replacement if condition is None or condition(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply_first(word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if _measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[:-len(suffix)]):
            stem = word[:-len(suffix)]
            break
    else:
        return word
    return _apply_first(stem, [
        ("at", "ate", None), ("bl", "ble", None), ("iz", "ize", None),
        ("*d", stem[-1:], lambda s: stem[-1] not in "lsz"),
        ("", "e", lambda s: _measure(s) == 1 and _ends_cvc(s)),
    ])


def _step1c(word: str) -> str:
    return _apply_first(word, [("y", "i", lambda s: len(s) > 1 and _is_consonant(s, len(s) - 1))])


def _step2(word: str) -> str:
    if word.endswith("alli") and _m_positive(word[:-4]):  # NLTK applies ALLI -> AL first, then step 2 again
        return _step2(word[:-4] + "al")
    return _apply_first(word, [
        ("ational", "ate", _m_positive), ("tional", "tion", _m_positive), ("enci", "ence", _m_positive),
        ("anci", "ance", _m_positive), ("izer", "ize", _m_positive), ("bli", "ble", _m_positive),
        ("alli", "al", _m_positive), ("entli", "ent", _m_positive), ("eli", "e", _m_positive),
        ("ousli", "ous", _m_positive), ("ization", "ize", _m_positive), ("ation", "ate", _m_positive),
        ("ator", "ate", _m_positive), ("alism", "al", _m_positive), ("iveness", "ive", _m_positive),
        ("fulness", "ful", _m_positive), ("ousness", "ous", _m_positive), ("aliti", "al", _m_positive),
        ("iviti", "ive", _m_positive), ("biliti", "ble", _m_positive), ("fulli", "ful", _m_positive),
        ("logi", "log", lambda s: _m_positive(word[:-3])),  # the 'l' counts with the stem (geo-, theo-)
    ])


def _step3(word: str) -> str:
    return _apply_first(word, [
        ("icate", "ic", _m_positive), ("ative", "", _m_positive), ("alize", "al", _m_positive),
        ("iciti", "ic", _m_positive), ("ical", "ic", _m_positive), ("ful", "", _m_positive),
        ("ness", "", _m_positive),
    ])


def _step4(word: str) -> str:
    suffixes = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")
    rules: list[Rule] = [(s, "", _m_above_one) for s in suffixes]
    rules.append(("ion", "", lambda s: _m_above_one(s) and s[-1:] in ("s", "t")))
    rules += [(s, "", _m_above_one) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]
    return _apply_first(word, rules)


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            word = stem
    if word.endswith("ll") and _measure(word[:-1]) > 1:
        word = word[:-1]
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 2:
        return word
    for step in (_step1a, _step1b, _step1c, _step2, _step3, _step4, _step5):
        word = step(word)
    return word
