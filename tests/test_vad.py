"""The Silero segmenter on real Mandarin speech."""

import numpy as np
import pytest
from dfn_testing import read16k, speech_with_gaps, zh_clip

from dora_funasr_nano.model_core.speech.vad import SegmenterConfig, SileroVad, SpeechSegmenter


def segment(audio: np.ndarray, chunk: int = 1600, **cfg):
    seg = SpeechSegmenter(SileroVad(), SegmenterConfig(**cfg))
    out = []
    for i in range(0, audio.size, chunk):
        out += seg.push(audio[i : i + chunk])
    return out + seg.flush(), seg


def test_probability_is_high_on_speech_and_low_on_silence():
    vad = SileroVad()
    speech = read16k(zh_clip("jishu"))
    probs = [vad(speech[i : i + 512]) for i in range(0, speech.size - 512, 512)]
    vad.reset()
    quiet = [vad(np.zeros(512, np.float32)) for _ in range(20)]
    assert max(probs) > 0.9 and max(quiet) < 0.1


def test_one_segment_per_utterance_with_boundaries():
    names = ["nihao_shijie", "jishu", "pangrama"]
    audio = speech_with_gaps(names, gap_s=1.0, lead_s=0.5)
    segs, _ = segment(audio)
    assert len(segs) == 3
    start = 0.5
    for seg, name in zip(segs, names, strict=True):
        dur = read16k(zh_clip(name)).size / 16000
        # each segment lies around its clip: starts no earlier than pre-roll before it, ends within the gap
        assert start - 0.35 <= seg.start_s <= start + dur
        assert start < seg.end_s <= start + dur + 1.0
        assert not seg.forced_split
        start += dur + 1.0
    # chunk size does not change the result
    again, _ = segment(audio, chunk=333)
    assert [(s.start_sample, s.samples.size) for s in again] == [(s.start_sample, s.samples.size) for s in segs]


def test_samples_are_the_input_samples():
    audio = speech_with_gaps(["jishu"])
    (seg,), _ = segment(audio)
    np.testing.assert_array_equal(seg.samples, audio[seg.start_sample : seg.start_sample + seg.samples.size])


def test_silence_gives_nothing_and_keeps_no_audio():
    segs, seg = segment(np.zeros(16000 * 120, np.float32), chunk=16000)
    assert segs == [] and seg._open is None
    assert sum(f.size for f in seg._pre_roll) <= 0.3 * 16000 + 512


def test_trailing_speech_is_flushed_at_end_of_stream():
    audio = np.concatenate([np.zeros(8000, np.float32), read16k(zh_clip("pangrama"))])
    cut = audio[: audio.size - 16000]  # stream ends in the middle of speech, no closing silence
    segs, _ = segment(cut)
    assert len(segs) == 1 and segs[-1].end_s == pytest.approx(cut.size / 16000, abs=1e-3)


def test_long_speech_is_split_at_most_max_segment():
    clip = read16k(zh_clip("pangrama"))
    audio = np.concatenate([clip] * 40)  # ~164 s of speech with only tiny pauses
    segs, _ = segment(audio, chunk=16000, max_segment_s=20.0, min_silence_s=2.0)
    assert all(s.samples.size <= 20 * 16000 for s in segs)
    assert any(s.forced_split for s in segs)
    # segments tile the speech: nothing between them is lost beyond short silences
    covered = sum(s.samples.size for s in segs)
    assert covered > 0.9 * audio.size


def test_nan_does_not_poison_the_stream():
    audio = speech_with_gaps(["jishu", "nihao_shijie"])
    broken = audio.copy()
    broken[4000:4600] = np.nan  # inside the leading silence
    broken[4600:4700] = np.inf
    clean, _ = segment(audio)
    segs, _ = segment(broken)
    assert len(segs) == len(clean) == 2


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        SegmenterConfig(threshold=0.3, neg_threshold=0.5)
    with pytest.raises(ValueError):
        SegmenterConfig(max_segment_s=60)
