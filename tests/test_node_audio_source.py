import time

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from dfn_testing import RecordingNode, read16k, zh_clip

from dora_funasr_nano.model_core.speech.replay import FileReplay, Rechunker, rechunk
from dora_funasr_nano.nodes.audio_source import AudioSourceConfig, run

TICKS = [("tick", pa.array([0]))] * 5


def run_file(path, **cfg):
    node = RecordingNode(TICKS)
    run(node, AudioSourceConfig(file=str(path), realtime=False, session_id="s1", **cfg))
    return node


def test_file_chunks_carry_the_contract(tmp_path):
    clip = read16k(zh_clip("jishu"))
    node = run_file(zh_clip("jishu"), chunk_ms=100)
    chunks = node.of("audio")
    assert len(chunks) == int(np.ceil(clip.size / 1600))
    assert [m["seq"] for _, m in chunks] == list(range(len(chunks)))
    assert all(m["session_id"] == "s1" and m["sample_rate"] == 16000 for _, m in chunks)
    assert [m["eos"] for _, m in chunks] == [False] * (len(chunks) - 1) + [True]
    starts = [m["start_s"] for _, m in chunks]
    assert starts == pytest.approx([i * 0.1 for i in range(len(chunks))])
    caps = [m["captured_at"] for _, m in chunks]
    assert caps == sorted(caps)
    data = np.concatenate([v.to_numpy() for v, _ in chunks])
    assert data.dtype == np.float32
    np.testing.assert_allclose(data, clip, atol=1e-6)
    assert node.of("error") == []


def test_stereo_44k_file_is_16k_mono(tmp_path):
    clip = read16k(zh_clip("nihao_shijie"))
    import soxr

    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([soxr.resample(clip, 16000, 44100)] * 2, axis=1), 44100, subtype="PCM_16")
    node = run_file(path)
    total = sum(len(v) for v, _ in node.of("audio"))
    assert abs(total - clip.size) <= 16


@pytest.mark.parametrize(
    "content,code", [(None, "AudioUnreadable"), (b"garbage", "AudioUnreadable"), (b"", "EmptyAudio")]
)
def test_bad_files_give_an_error_and_end_the_stream(tmp_path, content, code):
    path = tmp_path / "in.wav"
    if content == b"":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif content is not None:
        path.write_bytes(content)
    node = run_file(path)
    ((err, meta),) = node.of("error")
    assert meta["code"] == code and meta["session_id"] == "s1"
    assert code in err.to_pylist()[0]
    ((last, last_meta),) = node.of("audio")
    assert last_meta["eos"] is True and len(last) == 0


class SlowTicks(RecordingNode):
    """Ticks 50 ms apart, like dora/timer/millis/50."""

    def __next__(self):
        time.sleep(0.05)
        return super().__next__()


def test_realtime_pacing_follows_the_clock():
    node = SlowTicks([("tick", pa.array([0]))] * 10)
    t0 = time.monotonic()
    run(node, AudioSourceConfig(file=str(zh_clip("jishu")), realtime=True, session_id="s"))
    elapsed = time.monotonic() - t0
    audio = node.of("audio")
    sent = sum(len(v) for v, _ in audio) / 16000
    # only what a live stream would have captured by then was sent, then STOP closed the stream
    assert 0.2 <= sent <= elapsed + 0.11
    assert audio[-1][1]["eos"] is True and len(audio[-1][0]) == 0


def test_missing_microphone_is_a_typed_error():
    node = RecordingNode(TICKS)
    run(node, AudioSourceConfig(mode="mic", device="no-such-device-xyz", session_id="m"))
    ((err, meta),) = node.of("error")
    assert meta["code"] == "DeviceUnavailable" and "no-such-device-xyz" in err.to_pylist()[0]
    assert node.of("audio")[-1][1]["eos"] is True


def test_rechunk_keeps_every_sample():
    blocks = [np.arange(n, dtype=np.float32) for n in (5, 7, 1, 9)]
    out = list(rechunk(iter(blocks), 4))
    assert [c.size for c in out] == [4, 4, 4, 4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(out), np.concatenate(blocks))


class AudioCountingNode(RecordingNode):
    """Remembers how many chunks had been sent when each event was handed out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def __next__(self):
        ev = super().__next__()
        self.seen.append((ev.get("id"), len(self.of("audio"))))
        return ev


def test_start_on_ready_holds_the_stream_until_the_model_is_loaded():
    tick = ("tick", pa.array([0]))
    node = AudioCountingNode([tick] * 3 + [("ready", pa.array([True]))] + [tick] * 3)
    run(node, AudioSourceConfig(file=str(zh_clip("jishu")), realtime=False, start_on_ready=True, session_id="s"))
    assert node.seen[:5] == [("tick", 0), ("tick", 0), ("tick", 0), ("ready", 0), ("tick", 0)]
    assert len(node.of("audio")) == 26 and node.of("audio")[-1][1]["eos"] is True


def test_stop_before_ready_still_ends_the_stream():
    node = RecordingNode([("tick", pa.array([0]))])  # then STOP
    run(node, AudioSourceConfig(file=str(zh_clip("jishu")), start_on_ready=True, session_id="s"))
    ((value, meta),) = node.of("audio")
    assert meta["eos"] is True and len(value) == 0


def test_rechunker_keeps_the_rest_for_the_end():
    chunker = Rechunker(4)
    assert [c.size for c in chunker.push(np.arange(6, dtype=np.float32))] == [4]
    assert [c.size for c in chunker.push(np.arange(5, dtype=np.float32))] == [4]
    np.testing.assert_array_equal(chunker.rest(), np.array([2, 3, 4], np.float32))
    assert chunker.rest().size == 0


def test_replay_hands_out_what_a_live_stream_has_captured_by_now():
    clock = [0.0]
    replay = FileReplay(zh_clip("jishu"), 1600, realtime=True, clock=lambda: clock[0])
    replay.start()
    assert list(replay.due()) == []  # nothing captured yet
    clock[0] = 0.25
    assert [(c.size, last) for c, last in replay.due()] == [(1600, False), (1600, False)]  # 0.1 s and 0.2 s
    clock[0] = 1e9
    rest = list(replay.due())
    assert rest[-1][1] is True and [last for _, last in rest].count(True) == 1 and replay.done
    fast = FileReplay(zh_clip("jishu"), 1600, realtime=False)
    assert sum(c.size for c, _ in fast.due()) == read16k(zh_clip("jishu")).size and fast.done
