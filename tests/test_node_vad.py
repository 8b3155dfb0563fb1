from itertools import zip_longest

import numpy as np
import pyarrow as pa
from dfn_testing import RecordingNode, event, speech_with_gaps

from dora_funasr_nano.nodes.vad import VadConfig, run


def chunk_events(audio, session="s1", rate=16000, chunk=1600, eos=True, **extra):
    n = int(np.ceil(audio.shape[0] / chunk))
    return [
        event(
            "audio",
            pa.array(audio[i * chunk : (i + 1) * chunk].reshape(-1)),
            sample_rate=rate,
            session_id=session,
            seq=i,
            captured_at=1000.0 + (i + 1) * chunk / rate,
            eos=eos and i == n - 1,
            **extra,
        )
        for i in range(n)
    ]


def test_segments_have_ids_timing_and_samples():
    audio = speech_with_gaps(["nihao_shijie", "jishu"])
    node = RecordingNode(chunk_events(audio))
    run(node, VadConfig())
    segs = node.of("segment")
    assert [m["segment_id"] for _, m in segs] == [0, 1]
    for value, meta in segs:
        assert meta["session_id"] == "s1" and meta["sample_rate"] == 16000
        assert 0 <= meta["start_s"] < meta["end_s"] <= audio.size / 16000
        assert len(value) == round((meta["end_s"] - meta["start_s"]) * 16000)
        # captured_at is the wall clock of the segment's last sample on the sender's clock
        assert abs(meta["captured_at"] - (1000.0 + meta["end_s"])) < 1e-6
        assert meta["nonfinite_samples"] == 0
    assert node.of("error") == []


def test_sessions_are_independent_and_flushed_when_input_closes():
    a = speech_with_gaps(["jishu"])
    b = speech_with_gaps(["nihao_shijie"])
    pairs = zip_longest(chunk_events(a, "a", eos=False), chunk_events(b, "b", eos=False))
    events = [e for pair in pairs for e in pair if e is not None]
    node = RecordingNode(events)
    run(node, VadConfig())
    ids = sorted((m["session_id"], m["segment_id"]) for _, m in node.of("segment"))
    assert ids == [("a", 0), ("b", 0)]


def test_int16_48k_stereo_input_is_understood():
    import soxr

    mono = speech_with_gaps(["nihao_shijie", "jishu"])
    stereo48 = np.repeat(soxr.resample(mono, 16000, 48000)[:, None], 2, axis=1)
    pcm = (np.clip(stereo48, -1, 1) * 32767).astype(np.int16).reshape(-1)  # interleaved
    node = RecordingNode(chunk_events(pcm, rate=48000, chunk=9600, channels=2))
    run(node, VadConfig())
    assert len(node.of("segment")) == 2 and node.of("error") == []


def test_missing_sample_rate_is_an_error_not_a_guess():
    node = RecordingNode([event("audio", pa.array(np.zeros(1600, np.float32)), session_id="s1", seq=3)])
    run(node, VadConfig())
    ((err, meta),) = node.of("error")
    assert meta["code"] == "InvalidAudio" and meta["seq"] == 3 and "sample_rate" in err.to_pylist()[0]


def test_nan_chunk_keeps_the_segment_and_reports_it():
    audio = speech_with_gaps(["jishu"])
    audio[16000:16010] = np.nan  # inside the speech
    node = RecordingNode(chunk_events(audio))
    run(node, VadConfig())
    ((_, meta),) = node.of("segment")
    assert meta["nonfinite_samples"] == 10


def test_wrong_type_is_an_error():
    node = RecordingNode([event("audio", pa.array(["not", "audio"]), sample_rate=16000, session_id="s")])
    run(node, VadConfig())
    assert node.of("error")[0][1]["code"] == "InvalidAudio"
