"""The soak's CI version: 3 minutes of the 10-utterance espeak workload, repeated, through the Whisper file graph as
fast as it goes; every segment leaves as one final, the segments are the in-process VAD's, the report has each
node's RSS and the first/last window p95.
(`dfn-bench soak --minutes 30` is the full one; its figures are measured, not asserted.)"""

from __future__ import annotations

import json

import pytest
from dfn_testing import DATAFLOWS

from dora_funasr_nano.model_core.tools.pipeline_bench import cli
from dora_funasr_nano.model_core.tools.pipeline_bench.soak import drift

pytestmark = pytest.mark.integration


def test_drift_windows_split_by_stream_time():
    recs = [{"kind": "text", "fin": True, "end_s": t, "latency_s": t / 100, "asr_s": 0.1} for t in range(0, 600, 10)]
    d = drift(recs, 600.0, 100.0)
    assert d["first"]["n"] == 11 and d["last"]["n"] == 10
    assert d["first"]["latency_p95_s"] < d["last"]["latency_p95_s"]


def test_three_minute_soak(tmp_path):
    graph = str(DATAFLOWS / "file_whisper_translate.yml")
    cli.main(["soak", "--minutes", "3", "--n", "10", "--chunk-ms", "20", "--graph", graph,
              "--root", str(tmp_path / "w"), "--out", str(tmp_path)])  # fmt: skip
    report = json.loads(next(tmp_path.glob("soak-*.json")).read_text())
    assert report["returncode"] == 0 and report["audio_s"] >= 180
    # 5 plays of 10 utterances; the VAD finds each one, and each segment has exactly one final
    assert report["segments_in"] == report["finals_out"] >= 50 and report["lost"] == 0
    assert {"audio-source", "vad", "asr", "tts", "probe"} <= set(report["rss"])
    assert all(r["warm_mb"] > 10 and r["end_mb"] > 10 for r in report["rss"].values())
    assert report["drift"]["first"]["n"] > 0 and report["drift"]["last"]["n"] > 0
    # as fast as it goes, the segments are those the same VAD cuts in-process (what real time cuts too)
    reference = report["vad_reference"]
    assert reference["same"] and reference["segments"] == report["segments_in"], reference
