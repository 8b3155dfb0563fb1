"""Front end parity: our numpy fbank + LFR against kaldi-native-fbank and FunASR's own `WavFrontend`."""

import importlib.util

import numpy as np
import pytest
from dfn_testing import read16k, zh_clip
from parity import import_funasr, require

from dora_funasr_nano.model_core.fun_asr_nano.frontend import (
    FrontendConfig,
    _mel_matrix,
    apply_lfr,
    extract_features,
    fbank,
    lfr_length,
)

CLIPS = ["nihao_shijie", "jishu", "pangrama"]
# Measured max |diff| of log-mel vs kaldi-native-fbank: <= 1.9e-4 on the clips, 2.8e-4 on full-scale noise (float32
# FFT rounding in low, quiet mel bins), mean ~7e-7. The tolerance leaves headroom for other FFT builds without hiding
# a real mistake: a wrong window, pre-emphasis or mel edge moves values by 1e-2 or more.
FBANK_ATOL = 1e-3
FBANK_MEAN_ATOL = 1e-5


@pytest.fixture(scope="module")
def knf():
    require(importlib.util.find_spec("kaldi_native_fbank") is not None, "kaldi-native-fbank is not installed")
    import kaldi_native_fbank

    return kaldi_native_fbank


@pytest.fixture(scope="module")
def wav_frontend():
    import_funasr()
    from funasr.frontends import wav_frontend

    return wav_frontend


def knf_fbank(knf, samples: np.ndarray, window: str = "hamming") -> np.ndarray:
    """kaldi-native-fbank configured as FunASR calls it (funasr/utils/fbank.py), dither off."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.frame_length_ms = 25
    opts.frame_opts.frame_shift_ms = 10
    opts.frame_opts.dither = 0.0  # knf's own default is 3e-5
    opts.frame_opts.window_type = window
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20
    opts.mel_opts.high_freq = 0
    opts.energy_floor = 0.0
    opts.use_energy = False
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (samples * 32768).astype(np.float32))
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])


def assert_close_logmel(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert diff.max() <= FBANK_ATOL, f"max |diff| {diff.max():.2e} at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert diff.mean() <= FBANK_MEAN_ATOL, f"mean |diff| {diff.mean():.2e}"


def edge_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 16000 + 123
    return {
        "digital_silence": np.zeros(n, np.float32),
        # Quiet audio riding on a DC offset: only a left-to-right float32 mean (as kaldi's) gives kaldi's residue.
        "dc_offset_lsb_noise": (0.1 + rng.integers(-1, 2, n) / 32768).astype(np.float32),
        "full_scale_noise": np.clip(rng.standard_normal(n), -1, 1).astype(np.float32),
        "sine_440": (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32),
    }


@pytest.mark.parametrize("name", CLIPS)
def test_fbank_matches_kaldi_native_fbank(knf, name):
    samples = read16k(zh_clip(name))
    assert_close_logmel(fbank(samples), knf_fbank(knf, samples))


@pytest.mark.parametrize("name", list(edge_signals()))
def test_fbank_matches_kaldi_native_fbank_on_edge_signals(knf, name):
    samples = edge_signals()[name]
    assert_close_logmel(fbank(samples), knf_fbank(knf, samples))


@pytest.mark.parametrize("window", ["hanning", "povey", "rectangular"])
def test_other_kaldi_windows(knf, window):
    samples = read16k(zh_clip("nihao_shijie"))
    assert_close_logmel(fbank(samples, FrontendConfig(window=window)), knf_fbank(knf, samples, window))


def test_mel_matrix_matches_kaldi_native_fbank(knf):
    opts = knf.MelBanksOptions()
    opts.num_bins = 80
    ref = knf.MelBanks(opts, knf.FrameExtractionOptions(), 1.0).get_matrix().T  # (257, 80)
    ours = _mel_matrix(16000, 512, 80)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours > 0, ref > 0)  # same triangle support; Nyquist row empty
    # Not bit-equal: kaldi's logf (glibc) rounds MelScale(20 Hz) one ulp away from the correctly rounded value.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)


def upstream_features(wav_frontend, samples: np.ndarray) -> np.ndarray:
    import torch

    frontend = wav_frontend.WavFrontend(
        cmvn_file=None, fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10,
        lfr_m=7, lfr_n=6, dither=0.0,
    )  # fmt: skip
    feats, lens = frontend(torch.from_numpy(samples)[None], [samples.size])
    assert feats.shape[0] == 1 and int(lens[0]) == feats.shape[1]
    return feats[0].numpy()


def odd_length_signals() -> dict[str, np.ndarray]:
    speech = read16k(zh_clip("jishu"))
    return {f"speech_{n}": speech[8000 : 8000 + n] for n in (400, 401, 1000, 1359, 16000 + 123)}


@pytest.mark.parametrize("name", CLIPS + list(odd_length_signals()))
def test_features_match_funasr_wav_frontend(wav_frontend, name):
    samples = read16k(zh_clip(name)) if name in CLIPS else odd_length_signals()[name]
    ours = extract_features(samples)
    ref = upstream_features(wav_frontend, samples)
    assert ours.shape == ref.shape == (lfr_length(samples.size), 560)
    assert_close_logmel(ours, ref)


@pytest.mark.parametrize("m,n", [(7, 6), (5, 3), (4, 6), (1, 1)])
def test_apply_lfr_matches_upstream(wav_frontend, m, n):
    import torch

    rng = np.random.default_rng(m * 10 + n)
    for t in range(1, 41):
        feats = rng.standard_normal((t, 3)).astype(np.float32)
        ref = wav_frontend.apply_lfr(torch.from_numpy(feats), m, n).numpy()
        ours = apply_lfr(feats, m, n)
        assert ours.shape == ref.shape == (-(-t // n), 3 * m), t
        np.testing.assert_array_equal(ours, ref, err_msg=f"T={t}")


def test_apply_lfr_rows():
    feats = np.arange(8, dtype=np.float32)[:, None]  # frame i holds value i
    rows = apply_lfr(feats, 7, 6)
    # 3 copies of frame 0 on the left; the tail repeats the last frame
    np.testing.assert_array_equal(rows, [[0, 0, 0, 0, 1, 2, 3], [3, 4, 5, 6, 7, 7, 7]])


@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 1360, 1361, 16000, 16000 + 123, 160 * 6 * 7 + 400])
def test_lfr_length_matches_features(num_samples):
    samples = np.zeros(num_samples, np.float32)
    assert extract_features(samples).shape == (lfr_length(num_samples), 560)
    assert fbank(samples).shape == (1 + (num_samples - 400) // 160, 80)


@pytest.mark.parametrize("num_samples", [0, 1, 399])
def test_too_short_audio_raises(num_samples):
    samples = np.zeros(num_samples, np.float32)
    with pytest.raises(ValueError, match="at least 400"):
        extract_features(samples)
    with pytest.raises(ValueError, match="at least 400"):
        lfr_length(num_samples)


def test_rejects_pcm_integers_and_multichannel():
    with pytest.raises(ValueError, match="float"):
        fbank(np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        fbank(np.zeros((1600, 2), np.float32))


def test_dither_is_off_by_default_and_seedable():
    samples = read16k(zh_clip("nihao_shijie"))[:4000]
    np.testing.assert_array_equal(fbank(samples), fbank(samples))
    noisy = FrontendConfig(dither=1.0)
    a = fbank(samples, noisy, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, fbank(samples, noisy, rng=np.random.default_rng(1)))
    assert not np.array_equal(a, fbank(samples))


def test_config_from_upstream_frontend_conf():
    conf = {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10, "lfr_m": 7,
            "lfr_n": 6, "cmvn_file": None, "upsacle_samples": True}  # fmt: skip
    cfg = FrontendConfig.from_dict(conf)
    assert cfg == FrontendConfig()
    assert (cfg.window_size, cfg.window_shift, cfg.n_fft, cfg.feat_dim) == (400, 160, 512, 560)
