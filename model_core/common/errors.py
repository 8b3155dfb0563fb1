"""Typed errors. Their class names are the `code` of error messages on the dora graph (README, "Message contract")."""

from __future__ import annotations


class FunAsrNanoError(Exception):
    """Base class: every error this project raises on purpose."""

    @property
    def code(self) -> str:
        return type(self).__name__


class AudioError(FunAsrNanoError):
    """The audio itself cannot be used."""


class AudioUnreadable(AudioError):
    """A file is missing, not audio, or in a format libsndfile cannot decode."""


class EmptyAudio(AudioError):
    """The input holds no samples."""


class InvalidAudio(AudioError):
    """Samples are NaN/inf, the metadata is missing or contradicts the data (e.g. no sample_rate)."""


class AudioTooShort(AudioError):
    """Shorter than the model can use."""


class AudioTooLong(AudioError):
    """Longer than the node accepts in one segment (the VAD splits speech at 30 s)."""


class NoSpeech(AudioError):
    """The model heard no words in the segment (noise, music, breathing)."""


class InvalidText(FunAsrNanoError):
    """A text message is not one string (wrong Arrow type, a null, several items) or lacks its ids."""


class TextTooLong(InvalidText):
    """A transcript longer than any speech segment holds (text.MAX_TEXT_CHARS): refused, not truncated."""


class UnsupportedLanguage(FunAsrNanoError):
    """The requested language or task is not supported by the model."""


class ModelNotLoaded(FunAsrNanoError):
    """Model files are missing or failed to load; the message says how to get them."""


class RecognitionFailed(FunAsrNanoError):
    """The speech model raised while decoding a segment."""


class TranslationFailed(FunAsrNanoError):
    """The model ran but produced no usable translation."""


class ServiceUnavailable(TranslationFailed):
    """The remote translation service is failing; its circuit breaker is open, so requests fail fast."""


class SynthesisFailed(FunAsrNanoError):
    """Text-to-speech produced no audio."""


class OutputFailed(FunAsrNanoError):
    """A result could not be written out (read-only folder, disk full); the graph goes on."""


class Dropped(FunAsrNanoError):
    """Messages were lost between two nodes (a full queue, a restarted node): reported, never silent."""


class AudioDropped(Dropped):
    """Audio chunks of a stream never reached the VAD (a gap in their `seq`); the message says how many."""


class SegmentDropped(Dropped):
    """A speech segment never reached the speech model (a gap in `segment_id`); one error per lost segment."""


class DeviceUnavailable(FunAsrNanoError):
    """No audio capture/playback device could be opened."""
