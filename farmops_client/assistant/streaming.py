"""What an ``ask_stream`` consumer sees: the answer released in screened segments, never a raw delta.

ConverseStream's text deltas are buffered by a :class:`StreamGuard` (no I/O; the sync and the
asyncio driver share it). At a segment boundary, a sentence or line end once at least
``segment_chars`` characters arrived since the last screen (or ``4 * segment_chars`` without one),
the WHOLE answer so far goes to ``farmops.screen_stream_text`` (one short autocommit round trip,
nothing recorded): the farm's output guards and PII policy, so a pattern may span segments. The
database answers with the redacted form of the longest prefix that no later text can change (cut at
white space at least 80 characters before the end, outside every finding), and only its new part is
yielded. A ``block`` stops the text: nothing more of the answer is yielded, the model's stream is
still read to its end (its usage settles the run), and the answer screened before the settle
(``farmops.screen_output``, which records the guard event once) is the refusal.

The last part (the held-back tail) is released from that final screened answer, just before the
``Finished`` event, so what was yielded is always a prefix of ``Finished.result.text`` unless the
answer was withheld. Cost: one round trip per segment, about ``len(answer) / segment_chars``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .core import AskResult, Call, Finished, ModelCall, StreamAssembler, TextDelta, answer_text

logger = logging.getLogger(__name__)

#: Characters between two screens of a streamed answer (``ask_stream(segment_chars=...)``).
SEGMENT_CHARS = 200
#: A segment ends at a sentence or line end; without one it ends after this many segments' worth.
LONGEST_SEGMENT = 4
_BOUNDARY = re.compile(r"[.!?;:](?:\s|$)|\n")


def _texts(assembler: StreamAssembler | None) -> list[str]:
    """The text blocks a stream has delivered so far, in the order the answer joins them."""
    if assembler is None:
        return []
    return [assembler.blocks[i]["text"] for i in sorted(assembler.blocks) if "text" in assembler.blocks[i]]


class StreamGuard:
    """The screened release of one run's streamed answer (see the module docstring).

    A driver calls :meth:`start` and :meth:`end` around each streamed model call, :meth:`take` with
    each of its events (:meth:`feed` with its text delta: a ``Call`` to run when a segment is due,
    whose row goes to :meth:`screened`, which returns the text to yield), and :meth:`emitted` with
    each of the run's events (:meth:`finish` with the ``Finished`` result: the rest).
    """

    def __init__(self, segment_chars: int = SEGMENT_CHARS):
        self.segment_chars = segment_chars
        self.turns: list[str] = []  # the text blocks of the run's finished model calls
        self.call: ModelCall | None = None
        self.streamed = False  # a model call was streamed (not a refused input or a replay)
        self.screened_chars = 0  # the answer's length at the last screen
        self.released = ""  # what the consumer was given
        self.blocked = False
        self.screens = 0

    def start(self, call: ModelCall) -> None:
        """A streamed model call begins."""
        self.call, self.streamed = call, True

    def end(self) -> None:
        """The model call's stream ended (or broke): its text joins the finished turns."""
        if self.call is not None:
            self.turns.extend(_texts(self.call.assembler))
        self.call = None

    def answer(self) -> str:
        """The answer so far, composed as the run composes its final one."""
        return answer_text([*self.turns, *_texts(self.call.assembler if self.call else None)])

    def take(self, event: dict[str, Any], closed: bool) -> Call | None:
        """One ConverseStream event of the call in progress: fed to its assembler, and the text delta
        it carried to :meth:`feed` unless the consumer stopped reading (``closed``)."""
        assert self.call is not None and self.call.assembler is not None, "take() before start()"
        delta = self.call.assembler.feed(event)
        return None if not delta or closed else self.feed(delta)

    def emitted(self, event: Any) -> list[Any]:
        """What the consumer is given for one of the run's events: before :class:`Finished`, the
        held-back tail of the screened answer (:meth:`finish`) as a :class:`TextDelta`; then the event."""
        if isinstance(event, Finished) and (rest := self.finish(event.result)):
            return [TextDelta(rest), event]
        return [event]

    def feed(self, delta: str) -> Call | None:
        """Take one text delta: the screen to run now, or None while the segment is not complete."""
        if self.blocked or self.call is None or self.call.run_id is None:
            return None
        text = self.answer()
        grown = len(text) - self.screened_chars
        if grown < self.segment_chars:
            return None
        if grown < LONGEST_SEGMENT * self.segment_chars and not _BOUNDARY.search(delta):
            return None
        self.screened_chars = len(text)
        return Call("screen_stream_text", {"run_id": self.call.run_id, "text": text})

    def screened(self, row: dict[str, Any]) -> str:
        """``farmops.screen_stream_text``'s row: the newly released text ("" when none or blocked)."""
        self.screens += 1
        if row["verdict"] == "block":
            self.blocked = True
            return ""
        return self._release(row["released"] or "")

    def finish(self, result: AskResult) -> str:
        """The settled run: the rest of its screened answer to yield before ``Finished`` ("" when
        the answer was withheld, or nothing was streamed); ``result.screening["stream"]`` says how."""
        withheld = (result.screening.get("output") or {}).get("verdict") == "block"
        rest = "" if withheld or not self.streamed else self._release(result.text)
        result.screening["stream"] = {
            "screens": self.screens,
            "blocked": self.blocked,
            "released_chars": len(self.released),
        }
        return rest

    def _release(self, screened: str) -> str:
        if not screened.startswith(self.released):
            # Never expected (each release is a prefix of the next); withhold rather than contradict.
            logger.warning("a screened stream release does not extend the text already yielded")
            return ""
        piece, self.released = screened[len(self.released) :], screened
        return piece
