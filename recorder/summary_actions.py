"""Action items, decisions and due dates, found in a transcript's sentences by pattern.

Action items: "action item: ...", "TODO: ...", "<Name> will/needs to/should
...", "I'll ...", "let me ...", and requests ("Bob, can you ... by Friday?").
The owner is the person named, or the speaker for "I ..."; a request names its
addressee, or when two people talk, the other one. The due date is resolved
against the meeting date from "by Friday", "tomorrow", "next week", "end of
the month", "in three days", ISO dates and "December 3".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from recorder.summary_text import STOPWORDS, Sentence

__all__ = ["ActionItem", "action_items", "decisions", "due_date"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = tuple(name.lower() for name in calendar.month_name[1:])
MONTH_ABBR = tuple(name.lower() for name in calendar.month_abbr[1:])
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "fourteen": 14,
    "thirty": 30,
}

# Capitalised words that start sentences but are nobody's name.
NOT_NAMES = (
    frozenset(
        """we i you they he she it that this there these those everyone everybody someone somebody
    nobody anyone each all both who what which then so and but also maybe perhaps please team
    one another the a an our my your their his her its let us now next today tomorrow""".split()
    )
    | frozenset(WEEKDAYS)
    | frozenset(MONTHS)
    | STOPWORDS
)

_NAME = r"(?P<owner>[A-Z][a-zA-Z'-]+)"
_ACTION_VERBS = r"(?:will|'ll|is going to|needs to|has to|should|must|is responsible for|owns)"

ACTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "Action item for Bob: ...", "Action item: Bob to ...", "TODO: ..."
    (
        "explicit",
        re.compile(
            r"\b(?:action items?|todo|to-do|to do(?=\s*:))\b(?:\s+for\s+"
            + _NAME
            + r")?\s*[:,-]?\s*"
            r"(?P<task>\S.*)",
            re.IGNORECASE,
        ),
    ),
    # "Alice will send ...", "Bob needs to ...", "Carol's going to ..."
    (
        "named",
        re.compile(
            r"(?<![\w'])"
            + _NAME
            + r"(?:\s+"
            + _ACTION_VERBS
            + r"|'ll|'s going to)\s+(?P<task>\w.*)"
        ),
    ),
    # "I will ...", "I'll ...", "I'm going to ...", "Let me ..."
    (
        "self",
        re.compile(
            r"(?:^|[,;]\s*|\band\s+)(?:I\s+will|I'll|I'm\s+going\s+to|I\s+am\s+going"
            r"\s+to|I\s+can\s+take|[Ll]et\s+me)\s+(?P<task>\w.*)"
        ),
    ),
    # "Bob, can you ... ?", "Could you please ..."
    (
        "request",
        re.compile(
            r"(?:^|[,;]\s*)(?:" + _NAME + r",\s+)?(?:can|could|would|will)\s+you"
            r"\s+(?:please\s+)?(?P<task>\w.*)",
            re.IGNORECASE,
        ),
    ),
    # "Bob, please ..."
    ("please", re.compile(r"^" + _NAME + r",\s+please\s+(?P<task>\w.*)")),
)
# Phrases that look like commitments but are conversation.
NOT_TASKS = re.compile(
    r"^(?:be\s+(?:honest|brief|quick)|say|admit|hear|see\s+my|share\s+my\s+screen|think|"
    r"guess|repeat|start\s+by|mention|tell\s+you|explain)\b",
    re.IGNORECASE,
)

DECISION = re.compile(
    r"\b(?:we(?:'ve|\s+have)?\s+(?:all\s+)?decided|decided\s+to|the\s+decision\s+is|"
    r"final\s+decision|we(?:'re|\s+are)\s+going\s+(?:to\s+go\s+)?with|let's\s+go\s+with|"
    r"we(?:'ll|\s+will)\s+go\s+with|we(?:'ve|\s+have)?\s+(?:all\s+)?agreed|(?:it's|it\s+is)\s+"
    r"(?:decided|settled|agreed)|we\s+settled\s+on|agreed\s+(?:to|on|that))\b",
    re.IGNORECASE,
)
ASSENT = re.compile(
    r"^\s*(?:ok(?:ay)?[,.]?\s*)?(?:agreed|deal|decided|sounds good,?\s+agreed)"
    r"[.!]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ActionItem:
    text: str
    owner: str | None
    due: date | None
    speaker: str
    start: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "owner": self.owner,
            "due": self.due.isoformat() if self.due else None,
        }


def _weekday_after(day: date, weekday: int, *, next_week: bool = False) -> date:
    ahead = (weekday - day.weekday()) % 7 or 7
    found = day + timedelta(days=ahead)
    # "next Friday" said on a Monday means the Friday of the week after.
    if next_week and found.isocalendar()[:2] == day.isocalendar()[:2]:
        found += timedelta(days=7)
    return found


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _named_date(month: int, day_of_month: int, meeting: date) -> date | None:
    try:
        found = date(meeting.year, month, day_of_month)
        if found < meeting:
            found = date(meeting.year + 1, month, day_of_month)
    except ValueError:
        return None
    return found


def _relative(match: re.Match[str], meeting: date) -> date | None:
    phrase = match.group(0).lower()
    if match.group("iso"):
        try:
            return date.fromisoformat(match.group("iso"))
        except ValueError:
            return None
    if "tomorrow" in phrase:
        return meeting + timedelta(days=1)
    if re.search(r"today|tonight|end of (?:the )?day|\beod\b", phrase):
        return meeting
    if match.group("weekday"):
        return _weekday_after(
            meeting,
            WEEKDAYS.index(match.group("weekday").lower()),
            next_week=phrase.startswith("next"),
        )
    if match.group("count"):
        count = match.group("count").lower()
        amount = int(count) if count.isdigit() else NUMBERS[count]
        return meeting + timedelta(days=amount * (7 if "week" in phrase else 1))
    if "next week" in phrase:
        return _weekday_after(meeting, 0)
    if "week" in phrase:  # end of the week, this week
        return meeting + timedelta(days=max(4 - meeting.weekday(), 0))
    if "next month" in phrase:
        return _month_end(meeting) + timedelta(days=1)
    if "month" in phrase:
        return _month_end(meeting)
    month_name = (match.group("month") or match.group("month2") or "").lower()[:3]
    number = match.group("dom") or match.group("dom2")
    if month_name and number:
        return _named_date(MONTH_ABBR.index(month_name) + 1, int(number), meeting)
    return None


_MONTH = r"(?:" + "|".join(MONTHS + MONTH_ABBR) + r")\.?"
DUE = re.compile(
    r"(?P<iso>\b\d{4}-\d{2}-\d{2}\b)"
    r"|\btomorrow\b|\btoday\b|\btonight\b|\bend of (?:the )?day\b|\beod\b"
    r"|\b(?:next\s+|this\s+)?(?P<weekday>" + "|".join(WEEKDAYS) + r")\b"
    r"|\bin\s+(?P<count>\d+|" + "|".join(NUMBERS) + r")\s+(?:days?|weeks?)\b"
    r"|\bnext week\b|\b(?:end of (?:the |this )?week|this week)\b"
    r"|\bnext month\b|\bend of (?:the |this )?month\b"
    r"|\b(?P<month>" + _MONTH + r")\s+(?P<dom>\d{1,2})(?:st|nd|rd|th)?\b"
    r"|\b(?P<dom2>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month2>" + _MONTH + r")",
    re.IGNORECASE,
)


def due_date(text: str, meeting: date) -> date | None:
    """The first due date stated in ``text``, resolved against the meeting's date."""
    for match in DUE.finditer(text):
        found = _relative(match, meeting)
        if found is not None:
            return found
    return None


def _owner_name(word: str | None, speakers: Sequence[str]) -> str | None:
    """A named owner as a participant's full name where the first name matches."""
    if not word or word.lower() in NOT_NAMES:
        return None
    word = word.removesuffix("'s")
    for speaker in speakers:
        if speaker.split() and speaker.split()[0].lower() == word.lower():
            return speaker
    return word


def _addressee(sentence: Sentence, speakers: Sequence[str]) -> str | None:
    # With two people talking, "can you ..." is for the other one.
    others = [speaker for speaker in speakers if speaker != sentence.speaker]
    return others[0] if len(speakers) == 2 and len(others) == 1 else None


def _action(sentence: Sentence, speakers: Sequence[str], meeting: date) -> ActionItem | None:
    if sentence.is_question and not re.search(r"\byou\b", sentence.text, re.IGNORECASE):
        return None
    for kind, pattern in ACTION_PATTERNS:
        match = pattern.search(sentence.text)
        if match is None or NOT_TASKS.match(match.group("task")):
            continue
        due = due_date(sentence.text, meeting)
        owner = _owner_name(match.groupdict().get("owner"), speakers)
        if kind == "explicit" and owner is None:
            named = ACTION_PATTERNS[1][1].search(match.group("task"))
            owner = _owner_name(named.group("owner") if named else None, speakers)
        elif kind == "named" and owner is None:
            continue  # "It will ...", "Friday will ...": no one committed to anything
        elif kind == "self":
            owner = sentence.speaker or None
        elif kind == "request":
            # "Can you hear me?" is not a task: a request needs a date or a please.
            if due is None and "please" not in sentence.text.lower():
                continue
            owner = owner or _addressee(sentence, speakers)
        return ActionItem(sentence.text.strip(), owner, due, sentence.speaker, sentence.start)
    return None


def action_items(
    sentences: Sequence[Sentence], speakers: Sequence[str], meeting: date
) -> list[ActionItem]:
    """Every sentence that commits someone to a task, in time order."""
    found = [_action(sentence, speakers, meeting) for sentence in sentences]
    return [item for item in found if item is not None]


def decisions(sentences: Sequence[Sentence]) -> list[Sentence]:
    """Sentences that state a decision; a bare "Agreed." stands for the sentence before it."""
    found: list[Sentence] = []
    for index, sentence in enumerate(sentences):
        if sentence.is_question:
            continue
        if ASSENT.match(sentence.text):
            if index > 0 and sentences[index - 1] not in found:
                if not sentences[index - 1].is_question:
                    found.append(sentences[index - 1])
        elif DECISION.search(sentence.text):
            found.append(sentence)
    return found
