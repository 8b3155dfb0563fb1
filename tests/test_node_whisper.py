import json

import numpy as np
import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event, read16k, zh_clip

from dora_funasr_nano.nodes.whisper import WhisperConfig, run

IDS = {"session_id": "s1", "start_s": 1.0, "end_s": 2.5, "captured_at": 123.0}


def seg(samples, segment_id=0, **meta):
    return event("segment", pa.array(samples), **{"sample_rate": 16000, **IDS, "segment_id": segment_id, **meta})


def test_translates_mandarin_to_english_with_ids(whisper):
    node = RecordingNode([seg(read16k(zh_clip("nihao_shijie")), 0), seg(read16k(zh_clip("jishu")), 1)])
    run(node, WhisperConfig(), recognizer=whisper)
    texts = node.of("text")
    assert [m["segment_id"] for _, m in texts] == [0, 1]
    hello, counting = (v.to_pylist()[0] for v, _ in texts)
    assert "hello" in hello.lower()
    assert "123" in counting.replace(" ", "").replace(",", "")
    for _, m in texts:
        assert m["language"] == "en" and m["fin"] is True and m["primitive"] == "text"
        assert {k: m[k] for k in IDS} == IDS and m["asr_s"] > 0 and m["source_language"] == "zh"


def test_transcribe_gives_chinese(whisper):
    node = RecordingNode([seg(read16k(zh_clip("nihao_shijie")))])
    run(node, WhisperConfig(task="transcribe"), recognizer=whisper)
    ((value, meta),) = node.of("text")
    assert meta["language"] == "zh" and "你好" in value.to_pylist()[0]


def _clip_with_nan():
    x = read16k(zh_clip("jishu")).copy()
    x[100] = np.nan
    return x


@pytest.mark.parametrize(
    "samples,meta,code",
    [
        (_clip_with_nan(), {}, "InvalidAudio"),
        (np.zeros(400, np.float32), {}, "AudioTooShort"),
        (np.zeros(0, np.float32), {}, "EmptyAudio"),
        (np.zeros(31 * 16000, np.float32), {}, "AudioTooLong"),
        (np.zeros(16000, np.float32), {"sample_rate": None}, "InvalidAudio"),
        (np.zeros(3 * 16000, np.float32), {}, "NoSpeech"),  # silence: whisper says nothing
    ],
)
def test_bad_segments_give_exactly_one_error_with_ids(whisper, samples, meta, code):
    ev = seg(samples, 7)
    ev["metadata"].update(meta)
    ev["metadata"] = {k: v for k, v in ev["metadata"].items() if v is not None}
    node = RecordingNode([ev])
    run(node, WhisperConfig(), recognizer=whisper)
    assert node.of("text") == []
    ((err, m),) = node.of("error")
    body = json.loads(err.to_pylist()[0])
    assert body["code"] == m["code"] == code
    assert body["session_id"] == "s1" and body["segment_id"] == 7 and m["captured_at"] == 123.0


def test_resampled_input_gives_the_same_words(whisper):
    import soxr

    clip = read16k(zh_clip("nihao_shijie"))
    node = RecordingNode(
        [event("segment", pa.array(soxr.resample(clip, 16000, 44100)), sample_rate=44100, segment_id=0, session_id="s")]
    )
    run(node, WhisperConfig(), recognizer=whisper)
    assert "hello" in node.of("text")[0][0].to_pylist()[0].lower()


def test_missing_model_answers_every_segment_with_model_not_loaded(tmp_path):
    node = RecordingNode([seg(np.zeros(16000, np.float32), i) for i in range(3)])
    run(node, WhisperConfig(model=str(tmp_path)))
    errors = node.of("error")
    assert [m["segment_id"] for _, m in errors] == [0, 1, 2]
    assert {m["code"] for _, m in errors} == {"ModelNotLoaded"}


def test_bad_task_is_rejected_at_start():
    with pytest.raises(ValueError, match="DFN_WHISPER_TASK"):
        WhisperConfig(task="summarize")


def test_ready_is_announced_before_work(whisper):
    node = RecordingNode([seg(read16k(zh_clip("nihao_shijie")))])
    run(node, WhisperConfig(), recognizer=whisper)
    assert [o for o, _, _ in node.sent] == ["ready", "text"]
    assert node.of("ready")[0][1]["ok"] is True


def test_failed_load_is_announced_as_not_ok(tmp_path):
    node = RecordingNode([])
    run(node, WhisperConfig(model=str(tmp_path)))
    ((_, meta),) = node.of("ready")
    assert meta == {"ok": False, "code": "ModelNotLoaded"}


def test_bad_temperatures_are_rejected():
    with pytest.raises(ValueError, match="DFN_WHISPER_TEMPERATURE"):
        WhisperConfig(temperature="0,hot")
