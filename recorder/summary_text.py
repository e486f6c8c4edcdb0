"""Words and sentences of a transcript, for the extractive summarizer.

A small English stop list and a sentiment lexicon are kept here, in code:
the summarizer needs no download and no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NEGATIVE", "POSITIVE", "STOPWORDS", "Sentence", "content_words", "sentences", "words"]

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each either else even ever every few for from further get
    gets getting got had hadn't has hasn't have haven't having he he'd he'll he's her here here's
    hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its
    itself just let let's like me might more most much must mustn't my myself need needs no nor
    not now of off on once one only or other ought our ours ourselves out over own per quite
    rather really same say says said see seem seems shall shan't she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've thing things think this those though through to
    too under until up upon us very via was wasn't way we we'd we'll we're we've well were
    weren't what what's when when's where where's whether which while who who's whom why why's
    will with won't would wouldn't yes yet you you'd you'll you're you've your yours yourself
    yourselves okay ok yeah yep uh um hmm oh right sure maybe actually basically going gonna
    want wanna know mean kind sort lot lots still already thanks thank hello hi good morning
    afternoon everyone everybody today tomorrow week next last time make made go goes went take
    """.split()
)

POSITIVE = frozenset(
    """
    good great excellent amazing awesome fantastic wonderful nice happy glad pleased love
    liked enjoy enjoyed agree agreed success successful win wins won improve improved
    improvement progress better best perfect excited exciting helpful useful valuable clear
    easy smooth ahead ready done solved fixed resolved thanks thank appreciate appreciated
    impressive strong positive confident promising benefit benefits efficient fast approved
    support supported works working celebrate congratulations
    """.split()
)

NEGATIVE = frozenset(
    """
    bad poor terrible awful horrible sad unhappy angry upset hate dislike problem problems
    issue issues bug bugs broken break breaks fail failed failing failure wrong worse worst
    risk risks risky concern concerned concerns worried worry delay delayed delays late
    blocked blocker blockers difficult hard slow expensive confusing confused unclear
    disappointed disappointing frustrating frustrated mistake mistakes crash crashed crashes
    error errors negative weak lost lose losing behind overdue complaint complaints
    cancel cancelled missing stuck
    """.split()
)

NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor isn't wasn't aren't weren't don't doesn't "
    "didn't won't wouldn't can't cannot couldn't shouldn't haven't hasn't hadn't".split()
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Sentence:
    """One sentence of the transcript, with who said it and when."""

    text: str
    speaker: str
    participant_id: str
    start: float
    end: float

    @property
    def is_question(self) -> bool:
        return self.text.rstrip().endswith("?")


def words(text: str) -> list[str]:
    """Lower-case words, apostrophes kept (``don't``), curly quotes straightened."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _stem(word: str) -> str:
    # Enough to count "reports" with "report"; a real stemmer would be a dependency.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The words that carry meaning: no stop words, no numbers, stemmed plurals."""
    return [
        _stem(word)
        for word in words(text)
        if word not in STOPWORDS and len(word) > 2 and not word.isdigit() and "'" not in word
    ]


def sentences(segments: Iterable[Mapping[str, Any]]) -> list[Sentence]:
    """Split each segment into sentences; times are shared out by length of text."""
    found: list[Sentence] = []
    for segment in segments:
        text = " ".join(str(segment.get("text", "")).split())
        if not text:
            continue
        start, end = float(segment.get("start", 0.0)), float(segment.get("end", 0.0))
        end = max(end, start)
        parts = _SENTENCE_END.split(text)
        total = sum(len(part) for part in parts)
        at = start
        for part in parts:
            length = (end - start) * len(part) / total if total else 0.0
            found.append(
                Sentence(
                    part,
                    str(segment.get("speaker") or segment.get("participant_id") or ""),
                    str(segment.get("participant_id") or ""),
                    round(at, 3),
                    round(at + length, 3),
                )
            )
            at += length
    return found
