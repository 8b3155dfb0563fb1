"""LoRA adapters in mlx-lm's file format (as `mlx_lm.lora` writes them) on the tiny checkpoint: loaded, fused, and
equal to the unfused model (tests/test_lora_runtime.py: the unfused adapter switched per request)."""

import json

import mlx.core as mx
import numpy as np
import pytest
from dfn_testing import read16k, zh_clip
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import linear_to_lora_layers

from dora_funasr_nano.model_core.common.errors import ModelNotLoaded
from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.cache import prefill
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TaskMode, user_prompt

LORA = {"rank": 4, "scale": 2.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}


def write_adapter(tiny, path, task="translate"):
    """An adapter as `mlx_lm.lora` saves one (random non-zero lora_b, so it changes the output); returns the
    unfused LoRA model for reference."""
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)
    linear_to_lora_layers(asr.model.llm, 2, LORA)
    rng = np.random.default_rng(0)
    adapters = {
        k: mx.array(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
        for k, v in tree_flatten(asr.model.llm.parameters())
        if k.endswith(("lora_a", "lora_b"))
    }
    asr.model.llm.load_weights(list(adapters.items()), strict=False)
    path.mkdir()
    mx.save_safetensors(str(path / "adapters.safetensors"), adapters)
    config = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": LORA, "task": task}
    (path / "adapter_config.json").write_text(json.dumps(config))
    return asr


def last_logits(asr, audio):
    prompt = asr.prompt_embeddings(asr.audio_rows(asr.features(audio)), user_prompt(TaskMode.TRANSLATE_TO_EN))
    from dora_funasr_nano.model_core.fun_asr_nano.cache import make_cache

    return prefill(asr.model.llm, prompt[None], make_cache(asr.model.llm, prompt.shape[0] + 1))[0]


def test_fused_adapter_equals_the_lora_model_and_enables_translation(tiny, tmp_path):
    unfused = write_adapter(tiny, tmp_path / "adapter")
    fused = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=tmp_path / "adapter", fuse=True)
    base = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)
    audio = read16k(zh_clip("jishu"))
    want, got, plain = last_logits(unfused, audio), last_logits(fused, audio), last_logits(base, audio)
    assert float(mx.abs(got - want).max()) / float(mx.abs(want).max()) < 1e-4
    assert float(mx.abs(plain - want).max()) / float(mx.abs(want).max()) > 1e-2  # the adapter does something
    assert fused.can_translate and not base.can_translate
    result = fused.translate(audio)
    assert result.finish_reason in ("eos", "length", "repetition")
    from dora_funasr_nano.model_core.fun_asr_nano.api import TranslationConfig
    from dora_funasr_nano.model_core.translation.sentences import split_sentences

    sentences = []
    streamed = fused.translate(
        audio, TranslationConfig(stream_on_sentence=True), on_partial=lambda zh, en: sentences.append(en)
    )
    done, tail = split_sentences(result.text)
    expected = done + ([tail] if tail else [])
    assert streamed.text == result.text
    if result.finish_reason == "repetition":  # sentences already streamed may lie in the loop the guard cuts off
        assert sentences[: len(expected) - 1] == expected[:-1]
    else:
        assert sentences == expected
    # the numpy decode path sees the fused weights: same tokens as the MLX path
    from dora_funasr_nano.model_core.fun_asr_nano.generate import generate

    prompt = fused.prompt_embeddings(fused.audio_rows(fused.features(audio)), user_prompt(TaskMode.TRANSLATE_TO_EN))
    cfg = GenerationConfig(max_tokens=8, repetition_guard=False)
    eos = fused.model.args.eos_token_ids
    assert (
        generate(fused.model.llm, prompt, cfg, eos, backend="numpy").tokens
        == generate(fused.model.llm, prompt, cfg, eos, backend="mlx").tokens
    )


def test_transcription_adapter_does_not_claim_translation(tiny, tmp_path):
    write_adapter(tiny, tmp_path / "a", task="transcribe")
    assert not FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=tmp_path / "a").can_translate


def test_bad_adapters_are_model_not_loaded(tiny, tmp_path):
    with pytest.raises(ModelNotLoaded, match="not an adapter folder"):
        FunAsrNano.load(tiny.official_dir, adapter=tmp_path)
    write_adapter(tiny, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    config["lora_parameters"]["rank"] = 8  # shapes no longer fit the saved tensors
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotLoaded, match="does not fit"):
        FunAsrNano.load(tiny.official_dir, adapter=tmp_path / "a")
