"""Audio I/O and conversions: any file/rate/channels/dtype -> 16 kHz mono float32 in [-1, 1]."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..common.errors import AudioTooLong, AudioTooShort, AudioUnreadable, EmptyAudio, InvalidAudio

SAMPLE_RATE = 16_000

# rates outside this range are a broken header or a mislabelled message, not audio (8 kHz telephony ... 768 kHz)
MIN_RATE, MAX_RATE = 4_000, 768_000

_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int8): 128.0}


def to_float32(samples: np.ndarray) -> np.ndarray:
    """PCM integers are scaled to [-1, 1); floats are only cast."""
    samples = np.asarray(samples)
    if samples.dtype in _INT_SCALE:
        return (samples.astype(np.float32) / _INT_SCALE[samples.dtype]).astype(np.float32)
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned with 128 as zero
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    raise InvalidAudio(f"unsupported sample type {samples.dtype}")


def to_mono(samples: np.ndarray, channels: int = 1) -> np.ndarray:
    """Average channels. Accepts (frames, channels) or interleaved 1-D data with `channels` > 1."""
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if channels > 1:
        if samples.size % channels:
            raise InvalidAudio(f"{samples.size} interleaved samples do not divide into {channels} channels")
        return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples


def check_rate(rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidAudio(f"sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz: not audio, or a broken header")


def check_channels(channels: int) -> None:
    if not 1 <= channels <= 64:
        raise InvalidAudio(f"{channels} channels: expected 1 to 64")


def clip(samples: np.ndarray) -> np.ndarray:
    """Into [-1, 1]: over-driven float files, and the overshoot resampling adds to full-scale PCM. NaN and inf stay
    as they are (check_segment reports them; the VAD reads them as silence)."""
    out = np.clip(samples, -1.0, 1.0)
    infinite = np.isinf(samples)
    if infinite.any():
        out[infinite] = samples[infinite]
    return out


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    check_rate(from_rate)
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def normalize(samples: np.ndarray, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Any PCM buffer -> 16 kHz mono float32 in [-1, 1]."""
    check_channels(channels)
    return clip(resample(to_mono(to_float32(samples), channels), sample_rate))


def _open(path: str | Path) -> sf.SoundFile:
    path = Path(path)
    if not path.is_file():
        raise AudioUnreadable(f"no such audio file: {path}")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioUnreadable(f"cannot decode {path.name}: {exc}") from exc
    try:
        check_rate(f.samplerate)
        check_channels(f.channels)
    except InvalidAudio as exc:
        f.close()
        raise AudioUnreadable(f"{path.name}: {exc}") from None
    return f


def file_duration_s(path: str | Path) -> float:
    """The duration its header declares, without decoding."""
    with _open(path) as f:
        return f.frames / f.samplerate


def iter_audio_file(path: str | Path, block_s: float = 1.0) -> Iterator[np.ndarray]:
    """Stream a file as 16 kHz mono float32 blocks in [-1, 1], so a long file never sits in memory whole."""
    with _open(path) as f:
        if f.frames == 0:
            raise EmptyAudio(f"{Path(path).name} holds no samples")
        stream = None if f.samplerate == SAMPLE_RATE else soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1, "float32")
        block = max(1, int(block_s * f.samplerate))
        try:
            for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                mono = to_mono(data)
                yield clip(mono if stream is None else stream.resample_chunk(mono))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioUnreadable(f"decoding {Path(path).name} failed: {exc}") from exc
        if stream is not None:
            tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                yield clip(tail)


def load_audio(path: str | Path, max_s: float | None = None) -> np.ndarray:
    """A whole file as 16 kHz mono float32; AudioTooLong (before decoding) past `max_s` seconds."""
    if max_s is not None and (duration := file_duration_s(path)) > max_s:
        raise AudioTooLong(f"{Path(path).name} is {duration:.0f} s, the limit here is {max_s:g} s; stream it instead")
    return np.concatenate(list(iter_audio_file(path)))


def count_nonfinite(samples: np.ndarray) -> int:
    return int(samples.size - np.count_nonzero(np.isfinite(samples)))


def check_segment(samples: np.ndarray, min_s: float, max_s: float, sample_rate: int = SAMPLE_RATE) -> None:
    """Raise the typed error a speech model would otherwise hit later (or silently mis-handle)."""
    if samples.size == 0:
        raise EmptyAudio("segment holds no samples")
    bad = count_nonfinite(samples)
    if bad:
        raise InvalidAudio(f"segment has {bad} NaN/inf samples out of {samples.size}")
    duration = samples.size / sample_rate
    if duration < min_s:
        raise AudioTooShort(f"segment is {duration:.3f} s, the minimum is {min_s} s")
    if duration > max_s:
        raise AudioTooLong(f"segment is {duration:.1f} s, the maximum is {max_s} s; split it with the vad node")
