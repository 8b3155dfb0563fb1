"""What every translator shares: the `Translator` protocol, its `Translation` result, and the helpers local engines
use to turn a token stream into one result (`collect_stream`, with a deadline checked between tokens)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..common.errors import TextTooLong, TranslationFailed
from ..common.text import MAX_TEXT_CHARS
from .prompt import as_data, clean_output


@dataclass
class Translation:
    text: str
    attempts: int  # HTTP requests made, retries included
    finish_reason: str  # "stop", "length" (hit max_output_tokens: probably cut short), or "" when only [DONE] came
    elapsed_s: float


def require_text(text: str) -> None:
    """A transcript fit for the prompt: TextTooLong past MAX_TEXT_CHARS (refused, not cut: a cut sentence would be
    translated wrongly), TranslationFailed when nothing is left once markup and control characters are removed."""
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLong(
            f"the transcript is {len(text)} characters, the limit is {MAX_TEXT_CHARS} (a 30 s segment holds ~450)"
        )
    if not as_data(text):
        raise TranslationFailed("nothing to translate: the transcript is empty")


class Deadline:
    """A per-translation time limit for local models, checked between tokens (a token cannot be interrupted)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.end = None if not timeout_s else time.perf_counter() + timeout_s
        self.timeout_s = timeout_s

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise TranslationFailed(f"local translation timed out after {self.timeout_s:g} s")


def collect_stream(
    pieces: Iterable[tuple[str, str | None]],
    on_partial: Callable[[str], None] | None,
    timeout_s: float | None,
    t0: float,
) -> Translation:
    """A local model's streamed (text piece, finish reason) pairs -> one Translation; on_partial gets the text so
    far after each piece, and the deadline is checked after each."""
    deadline = Deadline(timeout_s)
    parts: list[str] = []
    finish = ""
    for piece, reason in pieces:
        finish = reason or finish
        if piece:
            parts.append(piece)
            if on_partial is not None:
                on_partial(clean_output("".join(parts)))
        deadline.check()
    output = clean_output("".join(parts))
    if not output:
        raise TranslationFailed("the local model produced no translation")
    return Translation(output, 1, finish, time.perf_counter() - t0)


class Translator(Protocol):
    """A text translator: the MLX and llama.cpp engines (local.load_local_translator) and RemoteTranslator."""

    def translate(
        self,
        text: str,
        *,
        source_language: str = "zh",
        context: Sequence[str] = (),
        on_partial: Callable[[str], None] | None = None,
    ) -> Translation: ...

    def close(self) -> None: ...
