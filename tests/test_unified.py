"""The unified model in the graph: one Fun-ASR-Nano with an unfused translation adapter gives each segment's English
(adapter on) and, with DFN_FUNASR_TRANSCRIPT, its Chinese transcript (adapter off) from one batch.

On the tiny random checkpoint with a random, non-zero adapter, so both texts are noise: what is checked is that
the node and the real `dora run` of dataflows/file_funasr_unified.yml give, for the same VAD segments, exactly the
tokens the library gives in-process, that the two texts differ (the adapter is on for one row only), and that the
accounting holds (one English final per segment, one transcript beside it, not counted as a final). That the
adapter can be trained to give the right English is tests/test_train_learning.py's proof.
"""

import mlx.core as mx
import numpy as np
import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event, read16k, zh_clip
from dora_graphs import dora_run, finals
from test_lora_runtime import random_adapter

from dora_funasr_nano.model_core.common.results import summarize
from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig
from dora_funasr_nano.model_core.speech.audio import load_audio
from dora_funasr_nano.model_core.speech.vad import SileroVad, SpeechSegmenter
from dora_funasr_nano.nodes.funasr import FunAsrConfig, run

MAX_TOKENS = 6


@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory):
    return random_adapter(tiny, tmp_path_factory.mktemp("unified") / "adapter")


@pytest.fixture(scope="module")
def unified(tiny, adapter):
    return FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter, backend="mlx")


def expected(asr: FunAsrNano, samples: np.ndarray) -> tuple[str, str]:
    zh, en = asr.transcribe_and_translate(samples, GenerationConfig(max_tokens=MAX_TOKENS))
    return zh.text, en.text


def seg(samples, segment_id):
    return event("segment", pa.array(samples), sample_rate=16000, session_id="s", segment_id=segment_id,
                 start_s=0.0, end_s=samples.size / 16000, captured_at=7.0)  # fmt: skip


def test_node_sends_the_transcript_then_the_english_final(unified):
    clips = [read16k(zh_clip("nihao_shijie")), read16k(zh_clip("jishu"))]
    node = RecordingNode([seg(c, i) for i, c in enumerate(clips)])
    run(node, FunAsrConfig(task="translate", transcript=True, max_tokens=MAX_TOKENS), asr=unified)
    assert [o for o, _, _ in node.sent] == ["ready", "transcript", "text", "transcript", "text"]
    for i, clip in enumerate(clips):
        (zh_value, zh_meta), (en_value, en_meta) = node.of("transcript")[i], node.of("text")[i]
        zh, en = expected(unified, clip)
        assert zh_value.to_pylist() == [zh] and en_value.to_pylist() == [en] and zh != en
        assert zh_meta["role"] == "transcript" and zh_meta["language"] == "zh" and zh_meta["fin"] is True
        assert en_meta["language"] == "en" and en_meta["task"] == "translate" and en_meta["fin"] is True
        assert en_meta["source_text"] == zh and en_meta["source_language"] == "zh"
        assert zh_meta["segment_id"] == en_meta["segment_id"] == i and zh_meta["captured_at"] == 7.0
    # the probe's summary counts the English as each segment's final, the transcript beside it
    records = [{"kind": "transcript" if m.get("role") else "text", **m} for o, _, m in node.sent if o != "ready"]
    summary = summarize(records)
    assert (summary["segments"], summary["final_texts"], summary["transcripts"]) == (2, 2, 2)
    assert not summary["segments_with_several_finals"]


def test_english_only_without_the_transcript_option(unified):
    clip = read16k(zh_clip("jishu"))
    node = RecordingNode([seg(clip, 0)])
    run(node, FunAsrConfig(task="translate", max_tokens=MAX_TOKENS), asr=unified)
    assert [o for o, _, _ in node.sent] == ["ready", "text"]
    assert node.of("text")[0][0].to_pylist() == [expected(unified, clip)[1]]


def test_transcript_needs_the_translate_task_and_no_partials(tiny):
    with pytest.raises(ValueError, match="DFN_FUNASR_TRANSCRIPT"):
        FunAsrConfig(transcript=True)
    with pytest.raises(ValueError, match="DFN_FUNASR_TRANSCRIPT"):
        FunAsrConfig(task="translate", transcript=True, partial_every=4)
    base = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)  # no adapter: a typed error per segment
    node = RecordingNode([seg(read16k(zh_clip("jishu")), 0)])
    run(node, FunAsrConfig(task="translate", transcript=True), asr=base)
    assert [m["code"] for _, m in node.of("error")] == ["UnsupportedLanguage"] and not node.of("transcript")


@pytest.mark.integration
def test_unified_graph_under_dora_run_matches_the_library(tmp_path, tiny, adapter, unified, bundled_sample):
    records, log = dora_run(
        "file_funasr_unified.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_FUNASR_MODEL=str(tiny.official_dir),
        DFN_FUNASR_ADAPTER=str(adapter), DFN_FUNASR_MAX_TOKENS=str(MAX_TOKENS), DFN_FUNASR_BACKEND="mlx",
        DFN_FUNASR_DTYPE="fp32",
    )  # fmt: skip
    results = finals(records)
    transcripts = {(r["session_id"], r["segment_id"]): r for r in records if r["kind"] == "transcript"}
    # the same VAD in-process over the same file: the graph's segments are these, so are its texts
    segmenter = SpeechSegmenter(SileroVad())
    segments = [*segmenter.push(load_audio(bundled_sample)), *segmenter.flush()]
    assert len(segments) == len(results) == len(transcripts) == 2, log[-3000:]
    for (key, english), segment in zip(sorted(results.items()), segments, strict=True):
        assert english["kind"] == "text", english
        assert english["start_s"] == pytest.approx(segment.start_s) and english["end_s"] == pytest.approx(segment.end_s)
        zh, en = expected(unified, segment.samples)
        assert (english["text"], english["source_text"], transcripts[key]["text"]) == (en, zh, zh)
        assert english["language"] == "en" and transcripts[key]["language"] == "zh"
    assert "[probe] summary: 2 segments, 2 texts" in log
