"""Nodes survive any single message: a foreign or malformed message, a model that cannot load, a synthesizer
that raises something of its own, an output folder that cannot be written. Each becomes one typed error and the
node serves the next message."""

import os

import numpy as np
import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event, speech_with_gaps
from test_node_vad import chunk_events

from dora_funasr_nano.model_core.common.errors import ModelNotLoaded
from dora_funasr_nano.nodes import vad as vad_node
from dora_funasr_nano.nodes.speech_node import Recognizer, SpeechToTextNode, Transcript
from dora_funasr_nano.nodes.tts import TtsConfig
from dora_funasr_nano.nodes.tts import run as run_tts

ONE_S = pa.array(np.zeros(16000, np.float32))


@pytest.mark.parametrize(
    "value, meta",
    [
        (ONE_S, {"sample_rate": "sixteen thousand"}),
        (ONE_S, {"sample_rate": [16000]}),
        (ONE_S, {"sample_rate": 16000, "channels": "two"}),
        (ONE_S, {}),
        (pa.array(["not", "audio"]), {"sample_rate": 16000}),
        (pa.array([[0.1, 0.2], [0.3, 0.4]]), {"sample_rate": 16000}),  # 2-D data
        (pa.array([0.1, None, 0.2], pa.float32()), {"sample_rate": 16000}),
        (pa.array([], pa.float32()), {"sample_rate": 16000}),
    ],
)
def test_asr_node_answers_a_bad_segment_with_one_error_and_serves_the_next(value, meta):
    ids = {"session_id": "s", "segment_id": 0}
    good = event("segment", ONE_S, sample_rate=16000, session_id="s", segment_id=1)
    node = RecordingNode([event("segment", value, **meta, **ids), good])
    recognizer = Recognizer(lambda samples, partial: Transcript("你好", "zh"))
    SpeechToTextNode(node, "test-asr", lambda: recognizer, 0.1, 30.0).run()
    errors = [m for _, m in node.of("error")]
    assert len(errors) == 1 and errors[0]["segment_id"] == 0
    assert errors[0]["code"] in ("InvalidAudio", "EmptyAudio", "AudioTooShort"), errors
    assert [m["segment_id"] for _, m in node.of("text")] == [1]


def test_vad_answers_bad_chunks_and_goes_on():
    events = chunk_events(speech_with_gaps(["nihao_shijie"]), chunk=1600)
    events[3]["metadata"]["sample_rate"] = "16k"
    events[5]["value"] = pa.array(["x"])
    node = RecordingNode(events)
    vad_node.run(node, vad_node.VadConfig())
    assert [m["code"] for _, m in node.of("error")] == ["InvalidAudio", "InvalidAudio"]
    assert len(node.of("segment")) == 1  # the speech around the two bad chunks still comes out
    assert len(node.of("ack")) == len(events)  # bad chunks are acknowledged too: they arrived


def test_vad_without_its_model_reports_it_once_per_stream_and_keeps_acknowledging(monkeypatch):
    def missing(*args, **kwargs):
        raise ModelNotLoaded("silero_vad.onnx is missing")

    monkeypatch.setattr(vad_node, "SileroVad", missing)
    events = chunk_events(np.zeros(16000 * 3, np.float32), chunk=1600)
    node = RecordingNode(events)
    vad_node.run(node, vad_node.VadConfig())
    assert [m["code"] for _, m in node.of("error")] == ["ModelNotLoaded"]
    assert [m["seq"] for _, m in node.of("ack")] == list(range(len(events)))


class Raising:
    def synthesize(self, text: str):
        raise RuntimeError("espeak-ng timed out")


def test_tts_turns_foreign_exceptions_and_unwritable_folders_into_typed_errors(tmp_path):
    node = RecordingNode([event("text", pa.array(["hello"]), session_id="s", segment_id=0, fin=True)])
    run_tts(node, TtsConfig(), synthesizer=Raising())
    assert [m["code"] for _, m in node.of("error")] == ["SynthesisFailed"]
    if os.geteuid() == 0:
        target = tmp_path / "a-file"  # root writes anywhere: a path under a regular file cannot be a folder
        target.write_text("")
        wav_dir = target / "wavs"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        wav_dir = tmp_path / "ro" / "wavs"
    texts = [event("text", pa.array([t]), session_id="s", segment_id=i, fin=True) for i, t in enumerate("ab")]
    node = RecordingNode(texts)
    run_tts(node, TtsConfig(wav_dir=str(wav_dir)))
    assert [(m["code"], m["segment_id"]) for _, m in node.of("error")] == [("OutputFailed", 0), ("OutputFailed", 1)]
    assert len(node.of("audio")) == 2  # the speech itself still goes out


def test_a_bad_last_chunk_still_ends_its_stream_and_acks_go_through_the_gate():
    """The eos of an unreadable chunk flushes the stream (the vad ends once every stream has ended); a bad chunk's
    acknowledgement waits for the downstream like any other."""
    events = chunk_events(speech_with_gaps(["nihao_shijie"]), chunk=1600)
    events[-1]["metadata"]["sample_rate"] = "16k"
    node = RecordingNode([])
    vad = vad_node.VadNode(node, vad_node.VadConfig(max_segments_in_flight=1))
    for e in events:
        vad.on_audio(e["value"], e["metadata"])
    assert vad.sessions == {} and len(node.of("segment")) == 1
    acked = [m["seq"] for _, m in node.of("ack")]
    assert events[-1]["metadata"]["seq"] not in acked  # a segment is out and unfinished: the gate holds it
