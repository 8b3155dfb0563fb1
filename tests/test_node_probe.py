import json

import pyarrow as pa
from dfn_testing import RecordingNode

from dora_funasr_nano.model_core.common.errors import AudioTooShort
from dora_funasr_nano.nodes.contract import error_message, now, text_message
from dora_funasr_nano.nodes.probe import ProbeConfig, run


def ev(input_id, pair):
    value, meta = pair
    return {"type": "INPUT", "id": input_id, "value": value, "metadata": meta}


def test_records_texts_errors_and_latency(tmp_path, capsys):
    t = now()
    events = [
        ev("text", text_message("Hello", "en", session_id="s", segment_id=0, captured_at=t - 1.0)),
        ev("text", text_message("Hel", "en", fin=False, session_id="s", segment_id=1, captured_at=t - 0.5)),
        ev("text", text_message("Two", "en", session_id="s", segment_id=1, captured_at=t - 2.0)),
        ev("asr_error", error_message(AudioTooShort("0.01 s"), session_id="s", segment_id=2, captured_at=t)),
        ev("source_error", (pa.array(["not json"]), {"code": "X"})),
    ]
    out = tmp_path / "r" / "probe.jsonl"
    summary = run(RecordingNode(events), ProbeConfig(output=str(out)))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["text", "text", "text", "error", "error"]
    assert lines[0]["text"] == "Hello" and 0.9 < lines[0]["latency_s"] < 1.5
    assert lines[3]["code"] == "AudioTooShort" and lines[3]["segment_id"] == 2
    assert summary["segments"] == 3 and summary["final_texts"] == 2
    assert summary["errors"] == {"AudioTooShort": 1, "X": 1}
    assert 1.0 <= summary["latency_s"]["median"] <= 2.5 and summary["segments_with_several_finals"] == []
    assert json.loads(out.with_suffix(".summary.json").read_text()) == summary
    printed = capsys.readouterr().out
    assert "Hello" in printed and "Hel\n" not in printed and "summary: 3 segments" in printed


def test_flags_segments_with_two_finals(tmp_path):
    events = [ev("text", text_message(x, "en", session_id="s", segment_id=0)) for x in ("a", "b")]
    summary = run(RecordingNode(events), ProbeConfig(output=str(tmp_path / "p.jsonl")))
    assert summary["segments_with_several_finals"] == [["s", 0]]
