"""Faults under a real `dora run`, handled with dora's own mechanisms (restart_policy, health_check_timeout,
NODE_RESTARTED): an asr killed or hung mid-stream is restarted and the vad sends the segments it lost again, so every
segment still has exactly one final; the probe survives its own restart and an unwritable results file."""

import json
import os
import re
import signal
import time

import numpy as np
import pytest
import soundfile as sf
from dfn_testing import DATAFLOWS, speech_with_gaps
from dora_graphs import DoraRun, finals

pytestmark = pytest.mark.integration
GRAPH = "file_funasr_transcribe.yml"  # the tiny random Fun-ASR-Nano: model loads in seconds, so restarts are quick


def speech_file(tmp_path, blocks: int = 4):
    block = speech_with_gaps(["nihao_shijie", "jishu", "pangrama"], gap_s=1.2)
    path = tmp_path / "speech.flac"
    sf.write(path, np.tile(block, blocks), 16000)  # 3 segments per block
    return path


def env(tiny, path, **extra):
    return {"DFN_SOURCE_REALTIME": "false", "DFN_SOURCE_FILE": str(path), "DFN_FUNASR_MODEL": str(tiny.official_dir),
            "DFN_FUNASR_MAX_TOKENS": "8", **extra}  # fmt: skip


def has_final(records):
    return any(r.get("kind") == "text" and r.get("fin", True) for r in records)


def check_redone(records, log, how):
    """Every segment has one final (DoraRun.finish checked it: no hole, no double, no loss report); some of them
    were sent again after the restart, and the probe saw the asr restart."""
    results = finals(records)
    assert len(results) == 12, sorted(results)
    assert all(r["kind"] == "text" for r in results.values()), results
    assert any(r.get("redo") for r in results.values()), "no segment was in flight at the kill"
    assert [r["node"] for r in records if r["kind"] == "restart"] == ["asr"]
    assert "restarting node after failure" in log and how in log


def test_asr_killed_mid_stream_is_restarted_and_its_segments_redone(tmp_path, tiny):
    run = DoraRun(GRAPH, tmp_path, **env(tiny, speech_file(tmp_path)))
    run.wait_for(has_final)
    pid = run.pid_of("dfn-funasr")
    os.kill(pid, signal.SIGSTOP)  # hold it while the vad sends it more segments, then kill it with them
    time.sleep(1.5)
    os.kill(pid, signal.SIGKILL)
    records, log = run.finish()
    check_redone(records, log, "exited because of signal SIGKILL")


def test_hung_asr_is_killed_by_the_health_check_and_its_segments_redone(tmp_path, tiny):
    text = (DATAFLOWS / GRAPH).read_text()
    timeout = "health_check_timeout: 60.0"
    assert text.count(timeout) == 1
    graph = tmp_path / "graph.yml"
    # 10 s, not less: the watchdog also covers the few seconds a model node takes to exit after its inputs close
    graph.write_text(text.replace(timeout, "health_check_timeout: 10.0"))
    run = DoraRun(str(graph), tmp_path, **env(tiny, speech_file(tmp_path)))
    run.wait_for(has_final)
    os.kill(run.pid_of("dfn-funasr"), signal.SIGSTOP)  # hung: alive, but its loop (and heartbeat) stopped
    records, log = run.finish()
    check_redone(records, log, "unresponsive for")
    (silent_ms,) = map(int, re.findall(r"node `asr` unresponsive for (\d+)ms", log))
    # the documented bound: health_check_timeout + one health_check_interval (1 s), measured by dora itself
    assert 10_000 < silent_ms <= 11_000 + 500, silent_ms


def test_probe_restarted_mid_stream_keeps_its_earlier_records(tmp_path, tiny):
    run = DoraRun(GRAPH, tmp_path, **env(tiny, speech_file(tmp_path, blocks=3)))
    before = run.wait_for(has_final)
    os.kill(run.pid_of("dfn-probe"), signal.SIGKILL)
    run.end()
    records = run.records()
    assert records[: len(before)] == before  # appended, never truncated
    summary = json.loads((tmp_path / "probe.summary.json").read_text())
    assert summary["restarts"] == {"probe": 1}
    # what dora delivered to the probe while it restarted is lost, and listed: the summary still spans both runs
    segments = {r["segment_id"] for r in records if r.get("kind") == "text"}
    assert summary["segments"] == len(segments) and summary["final_texts"] == len(segments)
    # (segments lost after the last one it saw cannot show as holes: the probe does not know how many came)
    assert summary["segments"] + len(summary["segments_missing"]) <= 9, summary


def test_probe_on_a_full_disk_reports_output_failed_and_the_graph_goes_on(tmp_path, tiny):
    run = DoraRun(GRAPH, tmp_path, **env(tiny, speech_file(tmp_path, blocks=1), DFN_PROBE_OUTPUT="/dev/full"))
    log = run.end()
    assert "OutputFailed: cannot write /dev/full" in log
    assert "[probe] summary: 3 segments, 3 texts" in log, log[-3000:]  # printed all the same


def test_fallback_graph_through_a_failing_llm_gives_one_result_per_segment_and_recovers(tmp_path, bundled_sample, llm):
    """An outage of minutes, in seconds: the local model cannot load (every segment goes to the fallback), and the
    server answers 429, 500, drops the connection, sends garbage and is slower than the read timeout before it
    recovers; with a 2-failure breaker and a 1 s cooldown, every segment still ends as one text or one typed error,
    and the segments after the outage are translated. Real-time replay spaces the segments (~3 s) beyond the
    cooldown, so each failing answer costs one segment whatever the speed of the machine (a fast replay could
    finish all 8 segments inside the outage)."""
    speech, rate = sf.read(bundled_sample, dtype="float32")
    pause = np.zeros(int(1.5 * rate), np.float32)
    path = tmp_path / "four_times.wav"
    sf.write(path, np.concatenate([speech, pause] * 4), rate)  # 2 segments each
    server = llm("429", "500", "drop", "malformed", "slow", "ok")
    run = DoraRun(
        "file_whisper_fallback.yml", tmp_path, DFN_SOURCE_REALTIME="true", DFN_SOURCE_FILE=str(path),
        DFN_TRANSLATE_MODEL=str(tmp_path / "missing.gguf"), DFN_LLM_BASE_URL=server.url, DFN_LLM_MAX_RETRIES="0",
        DFN_LLM_READ_TIMEOUT_S="0.3", DFN_LLM_BREAKER_FAILURES="2", DFN_LLM_BREAKER_COOLDOWN_S="1",
    )  # fmt: skip
    records, log = run.finish(timeout=400)
    results = [r for _, r in sorted(finals(records).items())]
    assert len(results) == 8, log[-3000:]
    kinds = [r["kind"] for r in results]
    first_text = kinds.index("text")
    assert "error" in kinds[:first_text] and set(kinds[first_text:]) == {"text"}, kinds  # it recovered, for good
    assert {r["code"] for r in results if r["kind"] == "error"} <= {"TranslationFailed", "ServiceUnavailable"}
    assert all(r["translator"] == "remote" and r["text"] == "Hello, world." for r in results[first_text:])
