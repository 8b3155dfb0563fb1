"""Fault handling without dora: the vad's redo of segments an asr restart lost, the asr's single answer to a
re-sent segment, the event loop's heartbeat and restart events, the probe's appending and unwritable files."""

import json

import numpy as np
import pyarrow as pa
from dfn_testing import RecordingNode

from dora_funasr_nano.model_core.common.results import ResultsFile
from dora_funasr_nano.model_core.common.sequence import AckGate, Redo
from dora_funasr_nano.nodes.contract import Port, audio_message, text_message
from dora_funasr_nano.nodes.events import FAILED, RESTARTED, Heartbeat, input_events
from dora_funasr_nano.nodes.probe import ProbeConfig, run
from dora_funasr_nano.nodes.redo import SegmentRedo
from dora_funasr_nano.nodes.speech_node import Recognizer, SpeechToTextNode, Transcript


def test_redo_sends_open_outputs_again_once_the_consumer_is_back_and_gives_up_after_max_attempts():
    redo: Redo[str] = Redo(max_attempts=2)
    for n in range(3):
        redo.sent("s", n, f"p{n}")
    assert redo.finished("s", 0) and not redo.finished("s", 0)  # a second final is not counted twice
    assert redo.take_lost() == ([], [])  # no restart: nothing to send
    redo.restarted()
    again, given_up = redo.take_lost()
    assert again == [("s", 1, "p1", 1), ("s", 2, "p2", 1)] and given_up == []
    for s, n, p, _ in again:
        redo.sent(s, n, p)
    redo.restarted()
    assert redo.take_lost() == ([], [("s", 1), ("s", 2)]) and not redo.open


def segment(n: int, **meta):
    return audio_message(np.zeros(1600, np.float32), 16000, session_id="s", segment_id=n, **meta)


def test_segment_redo_resends_on_ready_and_reports_what_a_failed_asr_held():
    node, gate = RecordingNode([]), AckGate(limit=1)
    out = SegmentRedo(node, gate, 16000, enabled=True)
    out.send("s", 0, np.zeros(1600, np.float32), {"session_id": "s", "segment_id": 0})
    out.ack(gate.received("s", 7))  # held: one segment open
    assert node.of(Port.ACK) == []
    out.restarted("asr")
    out.ready()
    (_, first), (_, again) = node.of(Port.SEGMENT)
    assert "redo" not in first and again["redo"] == 1 and again["segment_id"] == 0
    out.done("s", 0)  # its final releases the held ack
    assert [m["seq"] for _, m in node.of(Port.ACK)] == [7]
    out.send("s", 1, np.zeros(1600, np.float32), {"session_id": "s", "segment_id": 1})
    out.give_up()  # the asr failed for good: open and later segments become SegmentDropped
    out.send("s", 2, np.zeros(1600, np.float32), {"session_id": "s", "segment_id": 2})
    errors = [m for _, m in node.of(Port.ERROR)]
    assert [(m["code"], m["segment_id"]) for m in errors] == [("SegmentDropped", 1), ("SegmentDropped", 2)]
    assert len(node.of(Port.SEGMENT)) == 3


def test_asr_answers_a_resent_segment_once_and_sees_no_gap_in_it():
    calls = []

    def recognize(samples, partial):
        calls.append(samples.size)
        return Transcript("好", "zh")

    events = [{"type": "INPUT", "id": "segment", "value": v, "metadata": m}
              for v, m in (segment(5, redo=1), segment(5, redo=2), segment(6), segment(5))]  # fmt: skip
    node = RecordingNode(events)
    SpeechToTextNode(node, "asr", lambda: Recognizer(recognize), 0.05, 30).run()
    assert len(calls) == 3  # the second redo of 5 is skipped; a plain 5 (a new stream) is answered
    texts = [m for _, m in node.of(Port.TEXT)]
    assert [m["segment_id"] for m in texts] == [5, 6, 5] and texts[0]["redo"] == 1
    assert node.of(Port.ERROR) == []  # no SegmentDropped for 0-4: the first one seen was a redo


class Clocked(RecordingNode):
    """A node that declares `alive` and whose next(timeout) times out once before each event."""

    def node_config(self):
        return {"outputs": ["alive"]}

    def next(self, timeout=None):
        self.ticks = getattr(self, "ticks", 0) + 1
        if self.ticks % 2:
            return {"type": "ERROR", "error": "Timeout event stream error: Receiver timed out"}
        return super().next(timeout)


def test_event_loop_beats_on_alive_and_passes_restarts_and_failures(monkeypatch):
    now = iter(range(0, 1000, 2))  # each look at the clock: 2 s later
    monkeypatch.setattr("dora_funasr_nano.nodes.events.time.monotonic", lambda: next(now))
    events = [
        {"type": "NODE_RESTARTED", "id": "asr"},
        {"type": "NODE_FAILED", "id": "asr", "value": {"affected_input_ids": ["done_text"], "error": "x"}},
        {"type": "INPUT", "id": "text", "value": pa.array(["a"]), "metadata": {}},
    ]
    node = Clocked(events)
    got = list(input_events(node, restarts=True))
    assert [(i, m) for i, _, m in got] == [("asr", RESTARTED), ("asr", FAILED), ("text", {})]
    assert len(node.of(Port.ALIVE)) >= 3  # idle turns (timeouts) beat too; the timeouts are not errors
    assert [i for i, _, _ in input_events(RecordingNode(events))] == ["text"]  # opt-in
    assert not Heartbeat(RecordingNode([])).enabled  # a node without `alive` sends none


def test_probe_appends_and_a_restarted_probe_counts_its_earlier_records(tmp_path):
    out = tmp_path / "p.jsonl"
    out.write_text('{"kind": "text", "text": "other run", "session_id": "s", "segment_id": 0, "dataflow_id": "old"}\n')

    def message(n):
        return {"type": "INPUT", "id": "text", "value": text_message(f"t{n}", "en", session_id="s", segment_id=n)[0],
                "metadata": text_message(f"t{n}", "en", session_id="s", segment_id=n)[1]}  # fmt: skip

    first = RecordingNode([message(0), message(1)], dataflow_id="run")
    run(first, ProbeConfig(output=str(out), quiet=True))
    with out.open("a") as f:
        f.write('{"kind": "te')  # the killed probe's torn last line
    again = RecordingNode([{"type": "NODE_RESTARTED", "id": "asr"}, message(2)], dataflow_id="run", restart_count=1)
    summary = run(again, ProbeConfig(output=str(out), quiet=True))
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["text"] == "other run" and len(lines) == 7  # nothing truncated
    assert summary["segments"] == 3 and summary["final_texts"] == 3 and summary["segments_missing"] == []
    assert summary["restarts"] == {"probe": 1, "asr": 1}


def test_probe_on_a_full_disk_or_a_read_only_folder_reports_output_failed_and_goes_on(tmp_path, capsys):
    events = [{"type": "INPUT", "id": "text", "value": v, "metadata": m}
              for v, m in (text_message("Hello", "en", session_id="s", segment_id=0),)]  # fmt: skip
    summary = run(RecordingNode(events), ProbeConfig(output="/dev/full"))
    assert summary["final_texts"] == 1 and summary["output_failures"] >= 1
    err = capsys.readouterr()
    assert "OutputFailed: cannot write /dev/full" in err.err and "Hello" in err.out
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    results = ResultsFile(blocked / "sub" / "p.jsonl")  # its folder cannot be created
    results.write({"kind": "text"})
    results.close({})
    assert results.failures == 3 and "OutputFailed" in capsys.readouterr().err
