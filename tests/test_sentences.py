"""Sentence-level streaming translation (model_core.translation.sentences, .segments) and the translator nodes'
STREAM_ON_SENTENCE mode."""

import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event

from dora_funasr_nano.model_core.common.errors import TranslationFailed
from dora_funasr_nano.model_core.translation.base import Translation
from dora_funasr_nano.model_core.translation.segments import MAX_OPEN_SEGMENTS
from dora_funasr_nano.model_core.translation.sentences import SentenceStreamer, split_sentences, translate_by_sentence
from dora_funasr_nano.nodes.llm_fallback import LlmFallbackConfig
from dora_funasr_nano.nodes.translator_node import TranslatorNode


class Dictionary:
    """A translator that looks sentences up, and records what it was asked (text, context)."""

    WORDS = {"你好。": "Hello.", "我很忙！": "I am busy!", "明天见？": "See you tomorrow?", "再见": "Goodbye"}

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_on = fail_on

    def translate(self, text, *, source_language="zh", context=(), on_partial=None):
        self.calls.append((text, list(context)))
        if text == self.fail_on:
            raise TranslationFailed("dictionary is down")
        return Translation(self.WORDS.get(text, f"<{text}>"), 1, "stop", 0.01)


def test_split_on_sentence_ends_keeps_the_unfinished_tail():
    assert split_sentences("你好。我很忙！明天见？再") == (["你好。", "我很忙！", "明天见？"], "再")
    assert split_sentences("Is it? Yes!") == (["Is it?", "Yes!"], "")
    assert split_sentences("他说：“好。”然后走了") == (["他说：“好。”"], "然后走了")  # closing quote stays
    assert split_sentences("") == ([], "")


def test_length_cap_cuts_run_on_text_at_a_comma_else_hard():
    text = "一二三四五，六七八九十一二三四五六七八九十"
    sentences, tail = split_sentences(text, max_chars=8)
    assert sentences[0] == "一二三四五，"  # cut after the comma, not mid-phrase
    assert all(len(s) <= 8 for s in sentences) and len(tail) <= 8
    assert "".join(sentences) + tail == text  # nothing lost


def test_whole_transcript_by_sentence_with_callback_and_context():
    seen = []
    tr = Dictionary()
    result = translate_by_sentence(tr, "你好。我很忙！明天见？再见", on_partial=lambda zh, en: seen.append((zh, en)))
    assert result.text == "Hello. I am busy! See you tomorrow? Goodbye"
    assert [en for _, en in seen] == ["Hello.", "I am busy!", "See you tomorrow?", "Goodbye"]
    assert [zh for zh, _ in seen] == ["你好。", "我很忙！", "明天见？", "再见"]
    assert tr.calls[2] == ("明天见？", ["你好。", "我很忙！"])  # the two sentences before, as context
    assert result.attempts == 4


def test_growing_transcript_translates_each_sentence_once_and_revisions_are_redone():
    tr = Dictionary()
    streamer = SentenceStreamer(tr)
    assert streamer.feed("你好") == 0 and tr.calls == []  # no complete sentence yet
    assert streamer.feed("你好。我很") == 1
    assert streamer.feed("你好。我很忙！明") == 2
    assert [c[0] for c in tr.calls] == ["你好。", "我很忙！"]
    # the ASR revised its second sentence: only that one (and what follows) is translated again
    result = streamer.finish("你好。我很累！明天见？")
    assert [c[0] for c in tr.calls] == ["你好。", "我很忙！", "我很累！", "明天见？"]
    assert result.text == "Hello. <我很累！> See you tomorrow?"


def test_empty_transcript_is_a_typed_error():
    with pytest.raises(TranslationFailed):
        SentenceStreamer(Dictionary()).finish("   ")


def transcript(text, segment_id, fin=True):
    return event("text", pa.array([text]), session_id="s", segment_id=segment_id, language="zh", fin=fin)


def test_node_streams_sentences_from_partial_transcripts_then_one_final():
    node = RecordingNode([
        transcript("你好", 0, fin=False),
        transcript("你好。我很", 0, fin=False),  # first sentence complete: translated now
        transcript("你好。我很忙！明天", 0, fin=False),
        transcript("你好。我很忙！明天见？", 0),
        transcript("再见", 1),
    ])  # fmt: skip
    tr = Dictionary()
    TranslatorNode(node, LlmFallbackConfig(stream_on_sentence=True), tr, label="local").run()
    texts = node.of("text")
    seg0 = [(v.to_pylist()[0], m) for v, m in texts if m["segment_id"] == 0]
    assert [(t, m["fin"], m["seq"]) for t, m in seg0] == [
        ("Hello.", False, 0), ("Hello. I am busy!", False, 1), ("Hello. I am busy! See you tomorrow?", False, 2),
        ("Hello. I am busy! See you tomorrow?", True, 3),
    ]  # fmt: skip
    assert seg0[0][1]["source_text"] == "你好。"
    assert [c[0] for c in tr.calls] == ["你好。", "我很忙！", "明天见？", "再见"]  # each sentence once
    finals = [m for _, m in texts if m["fin"]]
    assert [m["segment_id"] for m in finals] == [0, 1] and node.of("error") == []


def test_node_failure_on_a_partial_is_retried_at_the_final_and_gives_one_error():
    node = RecordingNode([transcript("你好。我很", 0, fin=False), transcript("你好。", 0)])
    TranslatorNode(node, LlmFallbackConfig(stream_on_sentence=True), Dictionary(fail_on="你好。"), "local").run()
    errors = node.of("error")
    assert len(errors) == 1 and errors[0][1]["code"] == "TranslationFailed"
    assert errors[0][1]["source_text"] == "你好。" and [m for _, m in node.of("text") if m["fin"]] == []


def test_node_forgets_the_oldest_open_segments_whose_final_never_comes():
    node = RecordingNode([transcript("你好。再", i, fin=False) for i in range(MAX_OPEN_SEGMENTS + 6)])
    fallback = TranslatorNode(node, LlmFallbackConfig(stream_on_sentence=True), Dictionary(), "local").run()
    assert len(fallback.segments.open) == MAX_OPEN_SEGMENTS
    assert min(seg for _, seg in fallback.segments.open) == 6  # the oldest went first
