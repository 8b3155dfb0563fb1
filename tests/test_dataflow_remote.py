"""The two-stage remote graph under `dora run`: Whisper transcribes, llm-fallback asks an OpenAI-compatible
server (a local fake on 127.0.0.1, tests/fake_llm.py) for the English; when the server fails, every
segment still ends as one typed error."""

import pytest
from dora_graphs import dora_run, finals

pytestmark = pytest.mark.integration
GRAPH = "file_whisper_remote.yml"


def test_transcripts_are_translated_by_the_server(tmp_path, llm):
    server = llm("ok")
    records, log = dora_run(
        GRAPH, tmp_path, DFN_SOURCE_REALTIME="false", DFN_LLM_BASE_URL=server.url, DFN_LLM_MODEL="fake"
    )
    results = finals(records)
    assert len(results) == 2, log[-3000:]
    assert all(
        r["kind"] == "text" and r["translator"] == "remote" and r["text"] == "Hello, world." for r in results.values()
    )
    sent = [body["messages"][-1]["content"] for _, body in server.requests]
    assert any("你好" in s for s in sent) and len(sent) == 2  # the Chinese transcripts went to the server


def test_a_failing_server_gives_one_typed_error_per_segment(tmp_path, llm):
    server = llm("500")
    records, log = dora_run(
        GRAPH,
        tmp_path,
        DFN_SOURCE_REALTIME="false",
        DFN_LLM_BASE_URL=server.url,
        DFN_LLM_MAX_RETRIES="1",
        DFN_LLM_RETRY_BACKOFF_S="0.01",
    )
    results = finals(records)
    assert len(results) == 2, log[-3000:]
    assert {r["kind"] for r in results.values()} == {"error"}
    assert {r["code"] for r in results.values()} <= {"TranslationFailed", "ServiceUnavailable"}


def test_fallback_graph_takes_over_when_the_local_model_is_missing(tmp_path, llm):
    server = llm("ok")
    records, log = dora_run(
        "file_whisper_fallback.yml", tmp_path, DFN_SOURCE_REALTIME="false",
        DFN_TRANSLATE_MODEL=str(tmp_path / "no-model"), DFN_LLM_BASE_URL=server.url,
        DFN_TTS_WAV_DIR=str(tmp_path / "speech"),
    )  # fmt: skip
    results = finals(records)
    assert len(results) == 2, log[-3000:]  # one final per segment: the local errors do not reach the probe
    for r in results.values():
        assert r["kind"] == "text" and r["translator"] == "remote" and r["input"] == "fallback_text"
    assert len(list((tmp_path / "speech").glob("*.wav"))) == 2  # the fallback's English is spoken too


def test_fallback_graph_with_both_translators_down_still_answers_every_segment(tmp_path, llm):
    server = llm("500")
    records, log = dora_run(
        "file_whisper_fallback.yml", tmp_path, DFN_SOURCE_REALTIME="false",
        DFN_TRANSLATE_MODEL=str(tmp_path / "no-model"), DFN_LLM_BASE_URL=server.url, DFN_LLM_MAX_RETRIES="0",
    )  # fmt: skip
    results = finals(records)
    assert len(results) == 2, log[-3000:]
    assert {r["code"] for r in results.values()} <= {"TranslationFailed", "ServiceUnavailable"}
