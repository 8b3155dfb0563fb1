"""Translating the transcripts of a stream of speech segments (many sessions at once) with any `Translator`.

Per session, the previous final transcripts are the context of the next (`context_sentences`). With
`stream_on_sentence`, each segment whose final transcript has not come yet has a SentenceStreamer: partial ASR
transcripts (`feed`) complete sentences that are translated at once, and the final transcript (`translate`)
translates the rest. Partial English is reported through the `on_partial(english_so_far, seq, source_sentence)`
callback given with each transcript; the final result is returned, or a typed error raised.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..common.errors import FunAsrNanoError, TranslationFailed
from .base import Translation, Translator, require_text
from .sentences import SentenceStreamer

MAX_OPEN_SEGMENTS = 64  # sentence streams kept for segments whose final transcript never came (an upstream error)

# (the English so far, its seq: 0, 1, ... per segment, the source sentence it adds; "" when a reply streams)
OnPartial = Callable[[str, int, str], None]


@dataclass
class SegmentOptions:
    context_sentences: int = 0  # previous final transcripts of the session given as context
    stream_partials: bool = False  # also report the English so far while the translator streams its reply
    stream_on_sentence: bool = False  # translate each sentence once complete (also from partial transcripts)
    sentence_max_chars: int = 80  # length cap of one sentence when there is no sentence end

    def __post_init__(self) -> None:
        if self.context_sentences < 0:
            raise ValueError(f"context_sentences must be >= 0, got {self.context_sentences}")
        if self.sentence_max_chars < 1:
            raise ValueError(f"sentence_max_chars must be >= 1, got {self.sentence_max_chars}")


@dataclass
class SegmentTranslation:
    translation: Translation
    seq: int  # the final's seq: how many partials of this segment were reported before it


class _SentenceStream:
    """One segment being translated sentence by sentence; every translated sentence reports all the English so far."""

    def __init__(self, translator: Translator, language: str, context: list[str], options: SegmentOptions) -> None:
        self.partials, self.failed = 0, False
        self.on_partial: OnPartial = lambda english, seq, source: None
        self.streamer = SentenceStreamer(
            translator, source_language=language, context=context,
            context_sentences=max(options.context_sentences, 2), max_chars=options.sentence_max_chars,
            on_partial=self._sentence,
        )  # fmt: skip

    def _sentence(self, chinese: str, english: str) -> None:
        self.on_partial(self.streamer.english, self.partials, chinese)
        self.partials += 1


class SegmentTranslator:
    """Segments are keyed by (session, segment); `translate` is called once per segment, with its final transcript."""

    def __init__(
        self, translator: Translator, options: SegmentOptions | None = None, max_open_segments: int = MAX_OPEN_SEGMENTS
    ) -> None:
        self.translator, self.options, self.max_open = translator, options or SegmentOptions(), max_open_segments
        self.history: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=max(self.options.context_sentences, 1)))
        self.open: dict[tuple[str, Hashable], _SentenceStream] = {}  # stream_on_sentence: segments in progress

    def context(self, session: str) -> list[str]:
        n = self.options.context_sentences
        return list(self.history[session])[-n:] if n else []

    def _stream(
        self, session: str, segment: Hashable, language: str, on_partial: OnPartial, final: bool
    ) -> _SentenceStream:
        """The segment's sentence stream (a new one after a failure); the final transcript takes it out."""
        stream = self.open.pop((session, segment), None)
        if stream is None or stream.failed:
            stream = _SentenceStream(self.translator, language, self.context(session), self.options)
        stream.on_partial = on_partial
        if not final:
            self.open[(session, segment)] = stream
            while len(self.open) > self.max_open:  # the oldest first
                self.open.pop(next(iter(self.open)))
        return stream

    def feed(
        self, session: str, segment: Hashable, transcript: str, language: str, on_partial: OnPartial
    ) -> Exception | None:
        """A partial transcript: with stream_on_sentence, translate the sentences it has completed (otherwise it
        is ignored). A failure is returned, not raised: the final transcript is translated again and gets the
        segment's one result or error."""
        if not self.options.stream_on_sentence:
            return None
        stream = self._stream(session, segment, language, on_partial, final=False)
        try:
            stream.streamer.feed(transcript)
        except Exception as exc:  # noqa: BLE001 - any translator failure
            stream.failed = True
            return exc
        return None

    def translate(
        self, session: str, segment: Hashable, transcript: str, language: str, on_partial: OnPartial
    ) -> SegmentTranslation:
        """The segment's final transcript -> its English. Raises a FunAsrNanoError (TranslationFailed for anything
        the translator raised untyped), so every segment gets one result or one typed error."""
        partials = 0

        def reply_so_far(english: str) -> None:
            nonlocal partials
            on_partial(english, partials, "")
            partials += 1

        try:
            stream = None
            if self.options.stream_on_sentence:
                stream = self._stream(session, segment, language, on_partial, final=True)
            require_text(transcript)
            if stream is not None:
                result = stream.streamer.finish(transcript)
                partials = stream.partials
            else:
                result = self.translator.translate(
                    transcript, source_language=language, context=self.context(session),
                    on_partial=reply_so_far if self.options.stream_partials else None,
                )  # fmt: skip
        except FunAsrNanoError:
            raise
        except Exception as exc:
            raise TranslationFailed(f"{type(exc).__name__}: {exc}") from exc
        if self.options.context_sentences:
            self.history[session].append(transcript)
        return SegmentTranslation(result, partials)
