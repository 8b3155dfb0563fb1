"""dfn-bench: the alignment and latency arithmetic on hand-made records (fake clocks), the workload builder, and the
10-utterance CI benchmark through the real graphs under `dora run` (Whisper speech translation, real time, and
Fun-ASR-Nano with the tests' tiny random checkpoint, speed-only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from dfn_testing import DATAFLOWS

from dora_funasr_nano.model_core.tools.evaluation.data import is_eval_id
from dora_funasr_nano.model_core.tools.pipeline_bench import cli
from dora_funasr_nano.model_core.tools.pipeline_bench import workload as wl
from dora_funasr_nano.model_core.tools.pipeline_bench.metrics import assign, distribution, per_utterance
from dora_funasr_nano.model_core.tools.pipeline_bench.runner import GraphSpec
from dora_funasr_nano.model_core.tools.pipeline_bench.summary import accounting, to_simplified

ORIGIN = 1_000_000.0  # wall clock of stream second 0 in the hand-made records


def utts() -> list[wl.Utterance]:
    return [wl.Utterance("a", "你好", "hello", 1.0, 2.0), wl.Utterance("b", "再见", "bye", 4.0, 5.5),
            wl.Utterance("c", "谢谢", "thanks", 8.0, 9.0)]  # fmt: skip


def final(seg: int, start: float, end: float, received_after_end: float, **extra: object) -> dict:
    """A final English record as the probe writes it: the segment's last sample dated on the source clock."""
    captured = ORIGIN + end
    return {"kind": "text", "fin": True, "session_id": "s", "segment_id": seg, "start_s": start, "end_s": end,
            "captured_at": captured, "received_at": captured + received_after_end, "language": "en",
            "latency_s": received_after_end, **extra}  # fmt: skip


def test_segments_go_to_the_utterance_they_overlap_most():
    owner, extra = assign({0: (0.9, 2.1), 1: (3.9, 4.6), 2: (4.7, 5.7), 3: (6.0, 7.0)}, utts())
    assert owner == {0: 0, 1: 1, 2: 1} and extra == [3]


def test_ttfs_first_output_and_stages_from_the_records():
    records = [
        {"kind": "text", "fin": False, "session_id": "s", "segment_id": 0, "received_at": ORIGIN + 1.8, "text": "he"},
        final(0, 0.9, 2.3, 0.7, text="Hello.", source_text="你好", asr_s=0.4, translate_s=0.2),
        final(1, 3.9, 4.6, 0.5, text="Good", source_text="再"),
        final(2, 4.7, 5.8, 0.6, text="bye.", source_text="见", asr_s=0.3),
    ]
    results, facts = per_utterance(records, utts())
    a, b, c = results
    assert a.hyp_en == "Hello." and a.hyp_zh == "你好"
    assert a.ttfs_s == pytest.approx(2.3 + 0.7 - 2.0)  # utterance end 2.0 s -> received at 3.0 s
    assert a.first_output_s == pytest.approx(-0.2)  # the partial came before the speaker stopped
    assert a.stages["asr_s"] == 0.4 and a.stages["other_s"] == pytest.approx(1.0 - 0.4 - 0.2)
    assert a.stages["vad_s"] is None  # these records do not say when the vad cut the segment: not measured, not 0
    records[1]["segmented_at"] = ORIGIN + 2.55
    timed = per_utterance(records, utts())[0][0].stages
    assert timed["vad_s"] == pytest.approx(0.55) and timed["other_s"] == pytest.approx(1.0 - 0.55 - 0.4 - 0.2)
    assert b.segments == [1, 2] and b.hyp_en == "Good bye." and b.hyp_zh == "再见"
    assert b.ttfs_s == pytest.approx(5.8 + 0.6 - 5.5)  # the utterance's last final
    assert c.segments == [] and c.ttfs_s is None and facts["missed_utterances"] == ["c"]


def test_distribution_and_accounting():
    d = distribution([1.0, 2.0, 3.0, 4.0, None])  # type: ignore[list-item]
    assert d["n"] == 4 and d["median"] == 2.5 and d["max"] == 4.0 and d["p99"] == pytest.approx(3.97)
    good = [final(0, 0, 1, 0.1), final(1, 2, 3, 0.1)]
    assert accounting(good) == {"ok": True, "segments": 2, "errors": {}, "lost": 0}
    hole = accounting([final(0, 0, 1, 0.1), final(2, 2, 3, 0.1)])
    assert not hole["ok"] and "[1]" in hole["violation"]


def test_traditional_transcripts_are_scored_as_simplified():
    assert to_simplified("請進，請坐。") == "请进，请坐。"


def test_graph_spec_parsing():
    spec = GraphSpec.parse("dataflows/file_funasr_transcribe.yml,speed_only,DFN_FUNASR_MAX_TOKENS=8,label=tiny")
    assert spec.speed_only and spec.env == {"DFN_FUNASR_MAX_TOKENS": "8"} and spec.label == "tiny"
    remote = GraphSpec.parse("dataflows/file_whisper_remote.yml,llm=packaged")
    assert remote.llm == "packaged" and not remote.speed_only and remote.env == {}
    assert GraphSpec.parse("dataflows/file_whisper_remote.yml,llm=fake").speed_only  # its replies are not English


def test_the_suite_covers_every_file_graph_or_says_why_not(tmp_path, monkeypatch):
    from dora_funasr_nano.model_core.tools.pipeline_bench.suite import graph_suite

    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))  # no trained translator here
    monkeypatch.delenv("DFN_LLM_BASE_URL", raising=False)
    specs, skipped = graph_suite(DATAFLOWS, "fake", funasr_model="weights")
    files = {p.name for p in DATAFLOWS.glob("file_*.yml")}
    assert {s.path.name for s in specs} | {"file_funasr_unified.yml"} == files
    assert set(skipped) == {"whisper_two_stage_fused", "funasr_unified"}
    remote = {s.label: s for s in specs}["whisper_remote"]
    assert remote.llm == "fake" and remote.speed_only
    assert {s.label: s for s in specs}["funasr_two_stage"].env == {"DFN_FUNASR_MODEL": "weights"}
    specs, skipped = graph_suite(DATAFLOWS)
    assert "funasr_transcribe" in skipped and {s.label: s for s in specs}["whisper_fallback"].llm == "packaged"
    monkeypatch.setenv("DFN_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # the user's own server is measured
    assert {s.label: s for s in graph_suite(DATAFLOWS)[0]}["whisper_remote"].llm == ""


def test_hsk_workload_is_dev_only_timed_and_reproducible(tmp_path):
    def tones(rows):  # a stand-in voice: one 0.5-1.5 s tone per sentence
        return [0.3 * np.sin(np.arange(int(8000 * (1 + i % 3))) / 5).astype(np.float32) for i, _ in enumerate(rows)]

    w = wl.build_hsk(6, "espeak", seed=3, root=tmp_path / "a", synth=tones)
    again = wl.build_hsk(6, "espeak", seed=3, root=tmp_path / "b", synth=tones)
    assert [u.id for u in w.utterances] == [u.id for u in again.utterances]
    assert not any(is_eval_id(u.id) for u in w.utterances)
    audio, rate = sf.read(str(w.audio), dtype="float32")
    assert rate == 16000 and audio.size / rate == pytest.approx(w.duration_s, abs=1e-3)
    for u in w.utterances:  # speech exactly where the timeline says, silence in the pauses
        inside = audio[int(u.start_s * rate) : int(u.end_s * rate)]
        assert np.abs(inside).max() > 0.1
    gaps = [(a.end_s, b.start_s) for a, b in zip(w.utterances, w.utterances[1:], strict=False)]
    assert all(0.8 <= b - a <= 2.0 for a, b in gaps)
    assert all(np.abs(audio[int(a * rate) + 1 : int(b * rate) - 1]).max() == 0 for a, b in gaps)
    long = wl.repeat(w, 0.5, tmp_path / "a")
    assert long.duration_s >= 30 and long.utterances[len(w.utterances)].id == w.utterances[0].id + "~1"
    held = wl.build_hsk(6, "espeak", seed=3, root=tmp_path / "a", synth=tones, split="eval")
    assert held.folder.name == "hsk-eval-espeak-6-s3" and held.split == "eval" and w.folder.name.startswith("hsk-dev-")
    assert all(is_eval_id(u.id) for u in held.utterances)


@pytest.fixture(scope="module")
def espeak10(tmp_path_factory):
    return wl.build_hsk(10, "espeak", seed=0, root=tmp_path_factory.mktemp("workloads"))


@pytest.mark.integration
def test_ci_benchmark_of_the_graphs(espeak10, tmp_path, tiny):
    graphs = [
        str(DATAFLOWS / "file_whisper_translate.yml"),
        f"{DATAFLOWS / 'file_funasr_transcribe.yml'},speed_only,DFN_FUNASR_MODEL={tiny.official_dir},"
        "DFN_FUNASR_MAX_TOKENS=4,label=funasr-tiny",
    ]  # fmt: skip
    out = tmp_path / "report"
    cli.main(["run", "--workload", str(espeak10.folder), "--graph", *graphs, "--modes", "realtime", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    whisper, funasr = report["runs"]
    for run in report["runs"]:
        assert run["returncode"] == 0 and run["accounting"]["ok"] and run["accounting"]["lost"] == 0
        assert {"audio-source", "vad", "asr", "probe"} <= set(run["nodes"])
        assert all(u["peak_rss_mb"] > 10 and u["cpu_s"] > 0 for u in run["nodes"].values())
        assert run["alignment"]["missed_utterances"] == []  # espeak's speech is found by the VAD
    assert whisper["latency"]["ttfs_s"]["n"] == 10
    ttfs = [u["ttfs_s"] for u in whisper["utterances"]]
    asr = [u["stages"]["asr_s"] for u in whisper["utterances"]]
    assert all(t > a > 0 for t, a in zip(ttfs, asr, strict=True))  # the final comes after the asr's work
    # the vad cuts a segment only after its silence, so after the end of speech
    assert all(u["stages"]["vad_s"] > 0 for u in whisper["utterances"])
    assert 0 <= whisper["quality"]["chrf"] <= 100 and "cer" not in whisper["quality"]  # no transcript in this graph
    assert funasr["speed_only"] and funasr["quality"] == {} and funasr["tokens_per_s"] > 0
    assert all(u["stages"]["asr_s"] > 0 for u in funasr["utterances"])
    table = (out / "report.md").read_text()
    assert "| file_whisper_translate | realtime | ttfs |" in table and "speed-only" in table
    for png in ("latency_cdf.png", "stages.png", "quality_vs_latency.png", "rss.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
def test_one_dora_hop_is_timed(tmp_path):
    cli.main(["hop", "--seconds", "1", "--count", "5", "--json", str(tmp_path / "hop.json")])
    hop = json.loads((tmp_path / "hop.json").read_text())["1s"]
    assert hop["received"] == hop["sent"] == 15 and hop["latency_ms"]["n"] == 5 and hop["burst_mb_per_s"] > 0
