"""Flow control and loss detection, unit by unit: the gap detector, the acknowledgement gate, the replay window,
and the vad / speech nodes reporting what never reached them."""

import numpy as np
import pyarrow as pa
from dfn_testing import RecordingNode, event, speech_with_gaps
from test_node_vad import chunk_events

from dora_funasr_nano.model_core.common.sequence import AckGate, GapDetector
from dora_funasr_nano.model_core.speech.replay import FileReplay
from dora_funasr_nano.nodes.speech_node import Recognizer, SpeechToTextNode, Transcript
from dora_funasr_nano.nodes.vad import VadConfig
from dora_funasr_nano.nodes.vad import run as run_vad


def test_gap_detector_names_exactly_the_skipped_numbers():
    gaps = GapDetector()
    assert [list(gaps.observe("a", n)) for n in (0, 1, 4, 5, 9)] == [[], [], [2, 3], [], [6, 7, 8]]
    assert gaps.missing == {"a": 5}
    assert list(gaps.observe("b", 7)) == []  # a stream first seen mid-way: nothing known before it
    assert list(gaps.observe("a", 3)) == [] and list(gaps.observe("a", 10)) == []  # old number: not a gap
    gaps.forget("a")
    assert list(gaps.observe("a", 0)) == []


def test_ack_gate_holds_acknowledgements_while_the_downstream_is_full():
    gate = AckGate(limit=2)
    assert gate.received("s", 0) == [("s", 0)]
    gate.started("s")
    gate.started("s")  # two segments out, none finished: the gate closes
    assert gate.received("s", 1) == [] and gate.received("s", 2) == []
    assert gate.finished("s") == [("s", 2)]  # one finished: the newest held acknowledgement goes out
    assert gate.finished("s") == []  # nothing held any more
    assert gate.received("s", 3) == [("s", 3)]
    assert AckGate(0).received("t", 5) == [("t", 5)]  # no limit: every chunk is acknowledged


def test_replay_never_runs_more_than_its_window_ahead_and_resumes_after_a_silent_consumer(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)  # 50 chunks of 20 ms
    now = [0.0]
    replay = FileReplay(path, 320, realtime=False, clock=lambda: now[0], window=8, ack_timeout_s=5.0)
    replay.start()
    assert len(list(replay.due())) == 8 and len(list(replay.due())) == 0
    replay.ack(2)  # chunks 0-2 processed: three more may go
    assert len(list(replay.due())) == 3
    now[0] = 6.0  # the consumer went silent for longer than the timeout: one more window, counted
    assert len(list(replay.due())) == 8 and replay.ack_timeouts == 1
    replay.ack(49)
    sent = list(replay.due())
    assert sent[-1][1] and replay.done and replay.handed == 50


def test_vad_reports_lost_chunks_and_acknowledges_the_rest():
    events = chunk_events(speech_with_gaps(["nihao_shijie"]), chunk=1600)
    kept = [e for e in events if not 3 <= e["metadata"]["seq"] <= 6]  # chunks 3-6 lost on the way
    node = RecordingNode(kept)
    run_vad(node, VadConfig())
    errors = node.of("error")
    assert len(errors) == 1
    _, meta = errors[0]
    assert meta["code"] == "AudioDropped" and meta["seq"] == 3 and meta["count"] == 4
    assert [m["seq"] for _, m in node.of("ack")] == [e["metadata"]["seq"] for e in kept]


def test_vad_holds_acks_until_the_asr_finishes_a_segment():
    events = chunk_events(speech_with_gaps(["nihao_shijie", "jishu", "nihao_shijie"]), chunk=1600)
    node = RecordingNode(events)
    run_vad(node, VadConfig(max_segments_in_flight=1))
    sent = [(o, m.get("seq")) for o, _, m in node.sent]
    first = sent.index(("segment", None))
    assert [o for o, _ in sent[first:]].count("ack") == 0, "no `done` came back: nothing acknowledged after it"
    k = sent[first - 1][1] + 1  # the chunk whose processing closed segment 0: its ack is held
    # the asr's final for segment 0 arrives after chunk k + 1 (a partial before it does not count): the newest
    # held chunk is acknowledged, then every next one until segment 1 closes
    at = k + 2
    done = event("done_text", pa.array(["ok"]), session_id="s1", segment_id=0, fin=True)
    partial = event("done_text", pa.array(["o"]), session_id="s1", segment_id=0, fin=False)
    node = RecordingNode(events[:at] + [partial, done] + events[at:])
    run_vad(node, VadConfig(max_segments_in_flight=1))
    acks = [m["seq"] for _, m in node.of("ack")]
    assert acks[: k + 3] == [*range(k), at - 1, at, at + 1], acks[: k + 4]


def test_speech_node_answers_each_lost_segment_with_one_error():
    def segment(segment_id: int) -> dict:
        return event("segment", pa.array(np.zeros(8000, np.float32)), sample_rate=16000, session_id="s",
                     segment_id=segment_id)  # fmt: skip

    node = RecordingNode([segment(0), segment(3), segment(4)])
    recognizer = Recognizer(lambda samples, partial: Transcript("你好", "zh"))
    SpeechToTextNode(node, "test-asr", lambda: recognizer, 0.1, 30.0).run()
    lost = [m for _, m in node.of("error")]
    assert [(m["code"], m["segment_id"]) for m in lost] == [("SegmentDropped", 1), ("SegmentDropped", 2)]
    assert [m["segment_id"] for _, m in node.of("text")] == [0, 3, 4]
