"""Fun-ASR-Nano front end: 16 kHz waveform -> kaldi log-mel fbank (T, 80) -> LFR stacking -> (T_lfr, 560).

Mirrors FunASR's `WavFrontend` (funasr/frontends/wav_frontend.py) with `cmvn_file=None`: this model uses no CMVN.
The fbank follows kaldi-native-fbank's arithmetic step by step in float32, as kaldi does; max |diff| of the
log-mel against kaldi-native-fbank is <= 3e-4 (float32 FFT rounding), see tests/test_frontend.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

PCM_SCALE = 32768.0  # upstream multiplies [-1, 1] floats by 1 << 15 before kaldi
PREEMPH = 0.97
LOW_FREQ = 20.0  # Hz, kaldi's default; high_freq 0 means Nyquist
_F32 = np.float32
_FLT_EPSILON = np.finfo(np.float32).eps  # kaldi's log floor: log(max(e, FLT_EPSILON))


@dataclass(frozen=True)  # frozen: hashable, so the window/mel caches can key on it
class FrontendConfig:
    fs: int = 16000
    window: str = "hamming"
    n_mels: int = 80
    frame_length: int = 25  # ms
    frame_shift: int = 10  # ms
    lfr_m: int = 7
    lfr_n: int = 6
    dither: float = 0.0  # training-time noise; 0 keeps inference deterministic

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontendConfig:
        """From upstream config.yaml `frontend_conf`; its other keys (cmvn_file, ...) do not apply here."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def window_size(self) -> int:
        return int(self.fs * self.frame_length / 1000)

    @property
    def window_shift(self) -> int:
        return int(self.fs * self.frame_shift / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.window_size - 1).bit_length()  # kaldi round_to_power_of_two

    @property
    def feat_dim(self) -> int:
        return self.n_mels * self.lfr_m


@functools.lru_cache(maxsize=8)
def _window(kind: str, size: int) -> np.ndarray:
    # kaldi evaluates the window in double and stores it as float
    a = 2 * np.pi / (size - 1)
    i = np.arange(size, dtype=np.float64)
    if kind == "hamming":
        w = 0.54 - 0.46 * np.cos(a * i)
    elif kind == "hanning":
        w = 0.5 - 0.5 * np.cos(a * i)
    elif kind == "povey":
        w = (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    elif kind == "rectangular":
        w = np.ones(size)
    else:
        raise ValueError(f"unsupported window {kind!r} (hamming, hanning, povey, rectangular)")
    return w.astype(_F32)


def _mel_scale(freq: np.ndarray | np.floating) -> np.ndarray:
    # kaldi: 1127.0f * logf(1.0f + freq / 700.0f); a float64 log rounded to float32 equals logf
    return _F32(1127.0) * np.log((_F32(1.0) + freq / _F32(700.0)).astype(np.float64)).astype(_F32)


@functools.lru_cache(maxsize=8)
def _mel_matrix(fs: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float32 triangles, built with kaldi's float32 arithmetic (mel-computations.cc)."""
    n_bins = n_fft // 2  # kaldi leaves the Nyquist bin out
    mel_low, mel_high = _mel_scale(_F32(LOW_FREQ)), _mel_scale(_F32(fs / 2))
    delta = (mel_high - mel_low) / _F32(n_mels + 1)
    b = np.arange(n_mels, dtype=_F32)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = _mel_scale(_F32(fs / n_fft) * np.arange(n_bins, dtype=_F32))[None, :]
    rising, falling = (mel - left) / (center - left), (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.where(mel <= center, rising, falling), _F32(0))
    out = np.zeros((n_bins + 1, n_mels), _F32)
    out[:n_bins] = weights.T
    return out


def num_frames(num_samples: int, cfg: FrontendConfig = FrontendConfig()) -> int:
    """Fbank frames with snip_edges: only whole windows."""
    if num_samples < cfg.window_size:
        raise ValueError(
            f"audio is {num_samples} samples; the front end needs at least {cfg.window_size} "
            f"({cfg.frame_length} ms at {cfg.fs} Hz)"
        )
    return 1 + (num_samples - cfg.window_size) // cfg.window_shift


def lfr_length(num_samples: int, cfg: FrontendConfig = FrontendConfig()) -> int:
    """Rows of `extract_features` for `num_samples` samples: ceil(T / lfr_n)."""
    return -(-num_frames(num_samples, cfg) // cfg.lfr_n)


def fbank(
    samples: np.ndarray, cfg: FrontendConfig = FrontendConfig(), rng: np.random.Generator | None = None
) -> np.ndarray:
    """16 kHz mono float samples in [-1, 1] -> (T, n_mels) float32 kaldi log-mel (no energy, no CMVN)."""
    x = np.asarray(samples)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected 1-D float samples in [-1, 1], got {x.dtype} array of shape {x.shape}")
    size, n = cfg.window_size, num_frames(x.size, cfg)
    x = x.astype(_F32) * _F32(PCM_SCALE)
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[:: cfg.window_shift][:n]  # (T, size) view
    if cfg.dither:
        rng = rng or np.random.default_rng()
        frames = frames + _F32(cfg.dither) * rng.standard_normal(frames.shape, dtype=_F32)

    # DC removal with kaldi's left-to-right float32 sum: a pairwise sum leaves a different residue, which
    # shows up as log-mel differences of several units on quiet audio with a DC offset.
    mean = np.cumsum(frames, axis=1, dtype=_F32)[:, -1:] / _F32(size)
    frames = frames - mean
    emph = np.empty_like(frames)  # pre-emphasis; kaldi's first sample uses itself as its predecessor
    emph[:, 1:] = frames[:, 1:] - _F32(PREEMPH) * frames[:, :-1]
    emph[:, 0] = frames[:, 0] - _F32(PREEMPH) * frames[:, 0]
    emph *= _window(cfg.window, size)

    spec = np.fft.rfft(emph, n=cfg.n_fft, axis=1)  # (T, n_fft/2 + 1); complex64 on numpy >= 2
    power = (spec.real * spec.real + spec.imag * spec.imag).astype(_F32, copy=False)
    mel = power @ _mel_matrix(cfg.fs, cfg.n_fft, cfg.n_mels)
    return np.log(np.maximum(mel, _FLT_EPSILON))


def apply_lfr(feats: np.ndarray, m: int, n: int) -> np.ndarray:
    """Low frame rate: row i stacks frames i*n - (m-1)//2 ... i*n - (m-1)//2 + m-1, indices clamped to [0, T-1].

    Same rows as upstream `apply_lfr` (left pad with copies of frame 0, right pad with copies of the last frame,
    ceil(T / n) rows) -> (T_lfr, D * m) float32.
    """
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"expected (T >= 1, D) features, got shape {feats.shape}")
    t = feats.shape[0]
    t_lfr = -(-t // n)
    idx = np.arange(t_lfr)[:, None] * n + np.arange(m)[None, :] - (m - 1) // 2
    stacked = feats[np.clip(idx, 0, t - 1)]  # (T_lfr, m, D)
    return stacked.reshape(t_lfr, m * feats.shape[1]).astype(_F32, copy=False)


def extract_features(samples: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Waveform -> (T_lfr, n_mels * lfr_m) float32, the encoder input."""
    return apply_lfr(fbank(samples, cfg), cfg.lfr_m, cfg.lfr_n)
