"""Sentence-level streaming translation: translate each sentence of a (growing) transcript as soon as it is complete.

A transcript is split on sentence ends (。！？!? and their kin) and a length cap; each complete sentence is given to
any translator (local MLX, llama.cpp or remote: `translate(text, source_language=, context=, on_partial=)`) with the
sentences before it as context, and `on_partial(chinese, english)` is called per sentence. Feeding partial ASR
transcripts (token by token) lets the first English sentence out before the speaker has finished the segment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from ..common.errors import TranslationFailed
from .base import Translation, Translator

SENTENCE_ENDS = "。！？!?；;…"
_END = re.compile(rf"[{SENTENCE_ENDS}]+[”’\"')）」』]*")
_SOFT_BREAKS = "，,、：:"


def _cap(sentence: str, max_chars: int) -> list[str]:
    """Cut a run-on sentence into pieces of at most max_chars, at the last comma-like break when there is one."""
    pieces = []
    while len(sentence) > max_chars:
        cut = max(sentence.rfind(c, 0, max_chars) for c in _SOFT_BREAKS)
        cut = cut + 1 if cut > 0 else max_chars
        pieces.append(sentence[:cut])
        sentence = sentence[cut:]
    return pieces + [sentence]


def split_sentences(text: str, max_chars: int = 80) -> tuple[list[str], str]:
    """(complete sentences, unfinished tail). A tail longer than max_chars is cut at a break; only what is beyond
    the last cut stays unfinished (it may still grow)."""
    sentences, start = [], 0
    for match in _END.finditer(text):
        sentences.extend(_cap(text[start : match.end()], max_chars))
        start = match.end()
    tail_pieces = _cap(text[start:], max_chars)
    sentences.extend(tail_pieces[:-1])
    sentences = [s.strip() for s in sentences if s.strip()]
    return sentences, tail_pieces[-1].strip()


def stable_sentences(partial_text: str, max_chars: int = 80) -> list[str]:
    """The sentences of a still-growing text that can no longer change: a trailing partial UTF-8 character
    (decoded as U+FFFD) is ignored, and a sentence ending the text exactly is held back (a closing quote may follow)."""
    sentences, tail = split_sentences(partial_text.rstrip("\ufffd"), max_chars)
    return sentences if tail else sentences[:-1]


class SentenceStreamer:
    """Translates one segment's transcript sentence by sentence; feed it growing transcripts, then finish()."""

    def __init__(
        self,
        translator: Translator,
        *,
        source_language: str = "zh",
        context: Sequence[str] = (),
        context_sentences: int = 2,
        max_chars: int = 80,
        on_partial: Callable[[str, str], None] | None = None,
    ) -> None:
        self.translator, self.source_language = translator, source_language
        self.context, self.context_sentences, self.max_chars = list(context), context_sentences, max_chars
        self.on_partial = on_partial
        self.done: list[tuple[str, str]] = []  # (chinese, english) per translated sentence, in order
        self.attempts, self.finish_reason, self.elapsed_s = 0, "", 0.0

    @property
    def english(self) -> str:
        return " ".join(en for _, en in self.done if en)

    def _translate(self, sentence: str) -> None:
        previous = self.context + [zh for zh, _ in self.done]
        context = previous[-self.context_sentences :] if self.context_sentences else []
        t0 = time.perf_counter()
        result: Translation = self.translator.translate(sentence, source_language=self.source_language, context=context)
        self.elapsed_s += time.perf_counter() - t0
        self.attempts += result.attempts
        self.finish_reason = result.finish_reason
        self.done.append((sentence, result.text))
        if self.on_partial is not None:
            self.on_partial(sentence, result.text)

    def _sync(self, sentences: list[str]) -> None:
        """Keep translations of sentences that are unchanged; a revised transcript drops the rest."""
        same = 0
        while same < min(len(sentences), len(self.done)) and self.done[same][0] == sentences[same]:
            same += 1
        del self.done[same:]
        for sentence in sentences[same:]:
            self._translate(sentence)

    def feed(self, transcript: str) -> int:
        """Translate the complete sentences of a partial transcript not yet translated; returns how many are done."""
        self._sync(stable_sentences(transcript, self.max_chars))
        return len(self.done)

    def finish(self, transcript: str) -> Translation:
        """The whole transcript is final: translate what is left (its tail counts as a sentence)."""
        sentences, tail = split_sentences(transcript, self.max_chars)
        self._sync(sentences + ([tail] if tail else []))
        if not self.english:
            raise TranslationFailed("nothing was translated")
        return Translation(self.english, self.attempts, self.finish_reason, self.elapsed_s)


def translate_by_sentence(
    translator: Translator,
    text: str,
    *,
    source_language: str = "zh",
    context_sentences: int = 2,
    max_chars: int = 80,
    on_partial: Callable[[str, str], None] | None = None,
) -> Translation:
    """Translate a whole transcript one sentence at a time, calling on_partial(chinese, english) per sentence."""
    streamer = SentenceStreamer(
        translator, source_language=source_language, context_sentences=context_sentences, max_chars=max_chars,
        on_partial=on_partial,
    )  # fmt: skip
    return streamer.finish(text)
