"""The translate-text node with a tiny random Qwen3 in mlx-lm's layout (real tokenizer and chat template):
plumbing and the one-final-or-one-error invariant; the text itself is noise from random weights."""

import json

import mlx.core as mx
import numpy as np
import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event
from dora_graphs import dora_run, finals
from mlx.utils import tree_flatten
from parity import require_qwen3_tokenizer

from dora_funasr_nano.nodes.translate_text import TranslateTextConfig, run


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """An mlx-lm model folder: config.json, model.safetensors, tokenizer files (with Qwen3's chat template)."""
    import shutil

    from mlx_lm.models import qwen3
    from tiny_checkpoint import QWEN_CONF

    path = tmp_path_factory.mktemp("tiny-llm")
    model = qwen3.Model(qwen3.ModelArgs.from_dict(QWEN_CONF))
    rng = np.random.default_rng(0)
    weights = {
        k: mx.array(rng.standard_normal(v.shape).astype(np.float32) * 0.5) for k, v in tree_flatten(model.parameters())
    }
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    (path / "config.json").write_text(json.dumps(QWEN_CONF))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(require_qwen3_tokenizer() / name, path / name)
    return path


def transcript(text, segment_id, fin=True):
    return event("text", pa.array([text]), session_id="s", segment_id=segment_id, language="zh", fin=fin)


def test_one_english_text_per_final_transcript(tiny_llm):
    node = RecordingNode([transcript("你好世界", 0), transcript("部分", 1, fin=False), transcript("一二三", 1)])
    run(node, TranslateTextConfig(model=str(tiny_llm), max_tokens=5))
    texts = [(v, m) for v, m in node.of("text") if m["fin"]]
    assert [m["segment_id"] for _, m in texts] + [m["segment_id"] for _, m in node.of("error")] == [0, 1]
    for _, m in texts:
        assert m["language"] == "en" and m["translator"] == "local" and m["session_id"] == "s"
    assert node.of("ready")[0][1]["ok"] is True


def test_missing_model_answers_every_segment(tmp_path):
    node = RecordingNode([transcript("你好", 0), transcript("再见", 1)])
    run(node, TranslateTextConfig(model=str(tmp_path / "nothing")))
    assert node.of("ready")[0][1] == {"ok": False, "code": "ModelNotLoaded"}
    errors = node.of("error")
    assert [m["segment_id"] for _, m in errors] == [0, 1] and {m["code"] for _, m in errors} == {"ModelNotLoaded"}
    assert errors[0][1]["source_text"] == "你好"  # the transcript travels with the error, for a fallback node


@pytest.mark.integration
def test_two_stage_graph_under_dora_run(tmp_path, tiny_llm):
    records, log = dora_run(
        "file_whisper_two_stage.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_TRANSLATE_MODEL=str(tiny_llm),
        DFN_TRANSLATE_MAX_TOKENS="4",
    )  # fmt: skip
    results = finals(records)
    assert len(results) == 2, log[-3000:]
    assert all(r.get("translator") == "local" or r["kind"] == "error" for r in results.values())


@pytest.mark.integration
def test_funasr_two_stage_graph_under_dora_run(tmp_path, tiny_llm, tiny):
    records, log = dora_run(
        "file_funasr_two_stage.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_FUNASR_MODEL=str(tiny.official_dir),
        DFN_FUNASR_MAX_TOKENS="6", DFN_TRANSLATE_MODEL=str(tiny_llm), DFN_TRANSLATE_MAX_TOKENS="4",
    )  # fmt: skip
    results = finals(records)
    assert len(results) == 2, log[-3000:]  # Fun-ASR-Nano transcript -> local translator: one final per segment
    assert all(r.get("translator") == "local" or r["kind"] == "error" for r in results.values())


def test_mlx_translator_reuses_the_prompt_prefix_with_the_same_output(tiny_llm):
    from dora_funasr_nano.model_core.translation.mlx import MlxTranslator

    translator = MlxTranslator(str(tiny_llm), max_output_tokens=6)
    cached = [translator.translate(t).text for t in ("你好世界", "一二三")]
    assert len(translator._prefix) == 1  # the system message + worked examples, computed once
    translator._reuse_prefix = lambda prompt, messages: (prompt, None)
    assert [translator.translate(t).text for t in ("你好世界", "一二三")] == cached
