"""A slow consumer under a real `dora run`: the tiny random Fun-ASR-Nano file graph with a test-only node between
the asr and the probe that sleeps on every text before it passes the text on (a sink slower than the asr).

- With `queue_policy: backpressure` (what the file graphs use) the texts wait in the slow node's queue, even with
  queue_size 1, and every segment still ends as exactly one final: nothing is lost.
- With `queue_policy: drop_oldest` and queue_size 1 (freshness, as the live graphs' tts input) dora drops the
  oldest waiting texts; the drops are not silent: the probe's summary lists each segment that got neither a text
  nor an error (`segments_missing`), and those are exactly the segments the probe never saw.
"""

import json
import re
import sys

import numpy as np
import pytest
import soundfile as sf
from accounting import account
from dfn_testing import DATAFLOWS, speech_with_gaps
from dora_graphs import DoraRun, finals

pytestmark = pytest.mark.integration
SEGMENTS = 9  # 3 blocks of 3 clips: one VAD segment per clip

# The slow consumer: reads a text, sleeps, sends it on with its metadata (the ids the probe accounts by).
SLOW_NODE = """
import sys, time
from dora import Node

first_s, each_s = float(sys.argv[1]), float(sys.argv[2])
node, seen = Node(), 0
for event in node:
    if event["type"] == "INPUT":
        time.sleep(first_s if seen == 0 else each_s)
        seen += 1
        node.send_output("text", event["value"], event["metadata"])
print(f"[slow] passed on {seen} texts", flush=True)
"""

PROBE_TEXT = "\n      text: {source: asr/text, queue_size: 100, queue_policy: backpressure}"


def slow_graph(tmp_path, policy: str, first_s: float, each_s: float):
    """file_funasr_transcribe.yml with the probe's texts coming through the slow node (input `text`, queue_size 1)."""
    script = tmp_path / "slow_sink.py"
    script.write_text(SLOW_NODE)
    text = (DATAFLOWS / "file_funasr_transcribe.yml").read_text()
    assert text.count(PROBE_TEXT) == 1
    node = (
        f"  - id: slow\n    path: {sys.executable}\n    args: {script} {first_s} {each_s}\n"
        f"    inputs:\n      text: {{source: asr/text, queue_size: 1, queue_policy: {policy}}}\n"
        "    outputs: [text]\n\n"
    )
    text = text.replace(PROBE_TEXT, PROBE_TEXT.replace("asr/text", "slow/text"))
    text = text.replace("  - id: probe\n", node + "  - id: probe\n")
    graph = tmp_path / "graph.yml"
    graph.write_text(text)
    return graph


def run_slow(tmp_path, tiny, policy: str, first_s: float, each_s: float):
    audio = tmp_path / "speech.flac"
    block = speech_with_gaps(["nihao_shijie", "jishu", "pangrama"], gap_s=1.2)
    sf.write(audio, np.tile(block, SEGMENTS // 3), 16000)
    env = {"DFN_SOURCE_REALTIME": "false", "DFN_SOURCE_FILE": str(audio), "DFN_FUNASR_MODEL": str(tiny.official_dir),
           "DFN_FUNASR_MAX_TOKENS": "8"}  # fmt: skip
    run = DoraRun(str(slow_graph(tmp_path, policy, first_s, each_s)), tmp_path, **env)
    log = run.end(timeout=180)
    summary = json.loads((tmp_path / "probe.summary.json").read_text())
    return run.records(), log, summary


def passed_on(log: str) -> int:
    (n,) = map(int, re.findall(r"\[slow\] passed on (\d+) texts", log))
    return n


def test_slow_sink_with_backpressure_loses_nothing(tmp_path, tiny):
    records, log, summary = run_slow(tmp_path, tiny, "backpressure", first_s=2.0, each_s=0.3)
    account(records)  # one final per segment, no hole, no loss report
    results = finals(records)
    assert len(results) == SEGMENTS, log[-3000:]
    assert all(r["kind"] == "text" for r in results.values()), results
    assert passed_on(log) == SEGMENTS  # queue_size 1, yet every text waited its turn
    assert summary["segments_missing"] == [] and summary["final_texts"] == SEGMENTS


def test_slow_sink_preferring_freshness_drops_are_reported(tmp_path, tiny):
    # the first text is held 4 s while the asr (tiny model, a few tenths of a second per segment) answers the rest
    records, log, summary = run_slow(tmp_path, tiny, "drop_oldest", first_s=4.0, each_s=0.3)
    got = {(r["session_id"], r["segment_id"]) for r in records if r.get("kind") == "text" and r.get("fin", True)}
    assert passed_on(log) == len(got) < SEGMENTS, log[-3000:]  # the slow node passed on what dora kept
    assert {r["kind"] for r in records if r.get("fin", True)} <= {"text"}  # no error: the drops are dora's
    missing = {(s, i) for s, i in summary["segments_missing"]}
    (session,) = {s for s, _ in got}
    assert max(i for _, i in got) == SEGMENTS - 1  # drop_oldest keeps the newest: the last segment arrives
    assert missing == {(session, i) for i in range(SEGMENTS)} - got  # each dropped segment is listed
    assert len(missing) > 0 and "[probe] WARNING no result for" in log
    assert summary["final_texts"] == len(got)
