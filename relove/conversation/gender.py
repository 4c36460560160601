"""Gender from a first name: pymorphy3 for Russian (Cyrillic) names, gender-guesser for
others. Answers only when confident; otherwise ``None`` (the caller leaves ``unknown``).

Writing is guarded in SQL (``… WHERE gender = 'unknown'``), so a value set by an admin, the user
or a scenario is never overwritten, and the attempt is remembered in ``context.gender_tried``
so a name is analysed once per user.
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from typing import Literal

from relove.db.models import Gender
from relove.users.lifecycle import set_gender
from relove.users.service import Executor, set_values

log = logging.getLogger(__name__)

Guess = Literal["male", "female"]

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)?", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яёА-ЯЁ]")


class GenderGuesser:
    """Loads its dictionaries on first use (about 0.2 s), then answers in microseconds."""

    @cached_property
    def _morph(self):  # pragma: no cover - trivial
        import pymorphy3

        return pymorphy3.MorphAnalyzer(lang="ru")

    @cached_property
    def _detector(self):  # pragma: no cover - trivial
        import gender_guesser.detector as gd

        return gd.Detector(case_sensitive=False)

    def guess(self, first_name: str | None) -> Guess | None:
        if not first_name:
            return None
        m = _WORD.search(first_name)
        if not m:
            return None
        word = m.group(0)
        if len(word) < 2:
            return None
        if _CYRILLIC.search(word):
            return self._russian(word)
        return self._other(word)

    def _russian(self, word: str) -> Guess | None:
        genders = set()
        for parse in self._morph.parse(word):
            tag = parse.tag
            if "Name" in tag and "nomn" in tag and "sing" in tag:
                genders.add("ms-f" if "ms-f" in tag else tag.gender)
        if genders == {"masc"}:
            return "male"
        if genders == {"femn"}:
            return "female"
        return None

    def _other(self, word: str) -> Guess | None:
        answer = self._detector.get_gender(word.capitalize())
        if answer in ("male", "female"):
            return answer
        return None


async def infer_and_store(
    executor: Executor, guesser: GenderGuesser, user_id: int, first_name: str | None
) -> Gender | None:
    """Guess and store the gender of a user whose gender is unknown. Returns what was stored.

    The UPDATE only touches a row whose gender is still ``unknown``; provenance goes to
    ``markers.gender_source = "inferred"``. The attempt is recorded in ``context.gender_tried``
    (the name analysed) whatever the outcome.
    """
    guess = guesser.guess(first_name)
    stored: Gender | None = None
    if guess is not None:
        if await set_gender(executor, user_id, guess, only_if_unknown=True):
            stored = Gender(guess)
            await set_values(executor, user_id, {"gender_source": "inferred"})
            log.info("user %s: gender inferred as %s", user_id, guess)
    await set_values(executor, user_id, {"gender_tried": first_name or ""}, doc="context")
    return stored
