"""Streaming speech segmentation: Silero VAD v6 (the ONNX file shipped in the silero-vad wheel) + a segmenter.

The segmenter turns a stream of 16 kHz samples into speech segments with pre-roll, hang-over, a minimum speech
length, and a maximum length enforced by splitting at the quietest recent frame. It never holds more than one
segment plus the pre-roll, so hours of silence cost no memory.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..common.errors import ModelNotLoaded
from .audio import SAMPLE_RATE

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees in front of each frame

# silero-vad 6.2.3, data/silero_vad.onnx
SILERO_ONNX_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
SILERO_INSTALL_HINT = "install it with: pip install --no-deps silero-vad==6.2.3 (its torch dependency is not needed)"


def silero_model_path() -> Path:
    """The packaged model file, found without importing silero_vad (whose __init__ imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotLoaded(f"the silero-vad package is not installed; {SILERO_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelNotLoaded(f"{path} is missing; {SILERO_INSTALL_HINT}")
    return path


class SileroVad:
    """Speech probability per 512-sample frame; stateful (LSTM state + 64-sample context), one per stream."""

    def __init__(self, model_path: str | Path | None = None, verify: bool = True) -> None:
        import onnxruntime as ort

        path = Path(model_path) if model_path else silero_model_path()
        if verify and model_path is None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != SILERO_ONNX_SHA256:
                raise ModelNotLoaded(
                    f"{path} has sha256 {digest}, expected {SILERO_ONNX_SHA256}; {SILERO_INSTALL_HINT}"
                )
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        # NaN/inf would poison the recurrent state for the rest of the stream: the model sees zeros instead.
        frame = np.nan_to_num(frame.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        x = np.concatenate([self._context, frame[None, :]], axis=1)
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT:]
        return float(out[0, 0])


@dataclass
class SegmenterConfig:
    threshold: float = 0.5  # speech starts at or above this probability
    neg_threshold: float = 0.35  # and counts as silence below this one
    min_speech_s: float = 0.25  # shorter bursts are noise, not segments
    min_silence_s: float = 0.5  # hang-over: silence that ends a segment
    pre_roll_s: float = 0.3  # audio kept in front of the first speech frame
    post_pad_s: float = 0.2  # trailing silence kept after the last speech frame
    max_segment_s: float = 30.0  # forced split, at most 30 s (the ASR models' window)
    split_search_s: float = 5.0  # the forced split looks this far back for the quietest frame

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ValueError("need 0 < neg_threshold <= threshold < 1")
        if not 1.0 <= self.max_segment_s <= 30.0:
            raise ValueError("max_segment_s must be within [1, 30]")


@dataclass
class Segment:
    samples: np.ndarray  # 16 kHz mono float32, as received (NaN/inf are not repaired here)
    start_sample: int  # position in the stream
    forced_split: bool  # ended by max_segment_s rather than by silence
    speech_frames: int

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return (self.start_sample + self.samples.size) / SAMPLE_RATE


@dataclass
class _Open:
    start_sample: int
    frames: list[np.ndarray] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    speech_frames: int = 0
    silence_run: int = 0


class SpeechSegmenter:
    """Feed any-size chunks with `push`; collect finished segments; `flush` at end of stream."""

    def __init__(self, vad: SileroVad, config: SegmenterConfig | None = None) -> None:
        self.vad = vad
        self.cfg = config or SegmenterConfig()
        frames = lambda s: max(1, round(s * SAMPLE_RATE / FRAME))  # noqa: E731
        self._min_speech = frames(self.cfg.min_speech_s)
        self._min_silence = frames(self.cfg.min_silence_s)
        self._post_pad = frames(self.cfg.post_pad_s)
        self._max_frames = int(self.cfg.max_segment_s * SAMPLE_RATE) // FRAME
        self._search = frames(self.cfg.split_search_s)
        self._pre_roll: deque[np.ndarray] = deque(maxlen=frames(self.cfg.pre_roll_s))
        self._pending = np.zeros(0, np.float32)
        self._position = 0  # samples consumed into frames
        self._open: _Open | None = None
        self.noise_bursts = 0  # speech shorter than min_speech_s, not emitted

    def push(self, samples: np.ndarray) -> list[Segment]:
        buf = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = buf.size // FRAME
        self._pending = buf[n * FRAME :]
        out: list[Segment] = []
        for i in range(n):
            seg = self._step(buf[i * FRAME : (i + 1) * FRAME])
            if seg is not None:
                out.append(seg)
        return out

    def flush(self) -> list[Segment]:
        """End of stream: the partial last frame is scored and trailing speech is emitted."""
        out: list[Segment] = []
        if self._pending.size:
            tail = self._pending
            self._pending = np.zeros(0, np.float32)
            padded = np.concatenate([tail, np.zeros(FRAME - tail.size, np.float32)])
            seg = self._step(padded, keep=tail.size)
            if seg is not None:
                out.append(seg)
        if self._open is not None:
            seg = self._close(len(self._open.frames), forced=False)
            if seg is not None:
                out.append(seg)
        self._open = None
        self._pre_roll.clear()
        self.vad.reset()
        return out

    def _step(self, frame: np.ndarray, keep: int = FRAME) -> Segment | None:
        p = self.vad(frame)
        frame = frame[:keep]
        start = self._position
        self._position += keep
        cfg = self.cfg
        if self._open is None:
            if p >= cfg.threshold:
                pre = list(self._pre_roll)
                self._open = _Open(start - sum(f.size for f in pre), pre + [frame], [0.0] * len(pre) + [p], 1)
                self._pre_roll.clear()
            else:
                self._pre_roll.append(frame)
            return None
        seg = self._open
        seg.frames.append(frame)
        seg.probs.append(p)
        if p >= cfg.threshold:
            seg.speech_frames += 1
            seg.silence_run = 0
        elif p < cfg.neg_threshold or seg.silence_run:
            seg.silence_run += 1
        if seg.silence_run >= self._min_silence:
            keep_frames = len(seg.frames) - seg.silence_run + self._post_pad
            return self._close(keep_frames, forced=False)
        if len(seg.frames) >= self._max_frames:
            return self._force_split()
        return None

    def _close(self, keep_frames: int, forced: bool) -> Segment | None:
        seg = self._open
        assert seg is not None
        self._open = None
        # what follows the kept part becomes pre-roll for the next segment
        for f in seg.frames[keep_frames:]:
            self._pre_roll.append(f)
        if seg.speech_frames < self._min_speech:
            self.noise_bursts += 1
            return None
        samples = np.concatenate(seg.frames[:keep_frames])
        return Segment(samples, seg.start_sample, forced, seg.speech_frames)

    def _force_split(self) -> Segment:
        seg = self._open
        assert seg is not None
        lo = max(1, len(seg.probs) - self._search)
        cut = lo + int(np.argmin(seg.probs[lo:])) + 1  # split just after the quietest frame
        head_frames, tail_frames = seg.frames[:cut], seg.frames[cut:]
        tail_probs = seg.probs[cut:]
        head = np.concatenate(head_frames)
        tail_speech = sum(p >= self.cfg.threshold for p in tail_probs)
        out = Segment(head, seg.start_sample, True, seg.speech_frames - tail_speech)
        self._open = _Open(seg.start_sample + head.size, tail_frames, tail_probs, tail_speech, 0)
        if not tail_frames:
            self._open = _Open(seg.start_sample + head.size)
        return out
