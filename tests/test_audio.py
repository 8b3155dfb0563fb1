import numpy as np
import pytest
import soundfile as sf
from dfn_testing import read16k, zh_clip

from dora_funasr_nano.model_core.common.errors import (
    AudioTooLong,
    AudioTooShort,
    AudioUnreadable,
    EmptyAudio,
    InvalidAudio,
)
from dora_funasr_nano.model_core.speech.audio import check_segment, iter_audio_file, load_audio, normalize, to_float32


def test_int16_scaled_and_float_kept():
    assert to_float32(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    x = np.array([0.25, -0.5], np.float64)
    assert to_float32(x).dtype == np.float32
    with pytest.raises(InvalidAudio):
        to_float32(np.array(["a"]))


def test_interleaved_stereo_is_averaged():
    inter = np.array([1.0, 0.0, 0.5, 0.5], np.float32)
    assert normalize(inter, 16000, channels=2).tolist() == [0.5, 0.5]
    with pytest.raises(InvalidAudio):
        normalize(np.zeros(3, np.float32), 16000, channels=2)


@pytest.mark.parametrize("rate,channels,subtype", [(44100, 2, "PCM_16"), (8000, 1, "PCM_24"), (48000, 1, "FLOAT")])
def test_any_file_becomes_16k_mono(tmp_path, rate, channels, subtype):
    ref = read16k(zh_clip("nihao_shijie"))
    data = normalize(ref, 16000)
    data = np.stack([data] * channels, axis=1) if channels > 1 else data
    import soxr

    path = tmp_path / "x.wav"
    sf.write(path, soxr.resample(data, 16000, rate), rate, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32
    assert abs(out.size - ref.size) <= 16  # same duration within 1 ms
    # the content survives the round trip (8 kHz keeps only the band below 4 kHz)
    corr = np.corrcoef(out[: ref.size], ref[: out.size])[0, 1]
    assert corr > (0.8 if rate == 8000 else 0.99)


def test_ogg_and_flac_read(tmp_path):
    ref = read16k(zh_clip("nihao_shijie"))
    for ext in ("flac", "ogg"):
        path = tmp_path / f"x.{ext}"
        sf.write(path, ref, 16000)
        assert abs(load_audio(path).size - ref.size) <= 16


def test_unreadable_and_empty_files(tmp_path):
    with pytest.raises(AudioUnreadable, match="no such"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioUnreadable, match="cannot decode"):
        load_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudio):
        list(iter_audio_file(empty))


def test_check_segment_errors():
    ok = np.zeros(16000, np.float32)
    check_segment(ok, 0.1, 30)
    with pytest.raises(EmptyAudio):
        check_segment(np.zeros(0, np.float32), 0.1, 30)
    nan = ok.copy()
    nan[5] = np.nan
    nan[6] = np.inf
    with pytest.raises(InvalidAudio, match="2 NaN/inf"):
        check_segment(nan, 0.1, 30)
    with pytest.raises(AudioTooShort):
        check_segment(ok[:800], 0.1, 30)
    with pytest.raises(AudioTooLong):
        check_segment(np.zeros(31 * 16000, np.float32), 0.1, 30)
