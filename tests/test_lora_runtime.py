"""An unfused LoRA adapter at run time on the tiny checkpoint: one loaded model transcribes with the adapter off and
translates with it on, per request and per batch row, on both decode backends, and the prompt cache keeps the two
apart. The adapter's weights are random and non-zero, so every comparison below can fail."""

import mlx.core as mx
import numpy as np
import pytest
from dfn_testing import read16k, zh_clip

from dora_funasr_nano.model_core.common.errors import UnsupportedLanguage
from dora_funasr_nano.model_core.fun_asr_nano import lora
from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.cache import PromptCache, make_cache, prefill
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig, generate, generate_batch
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TaskMode, user_prompt

CONFIG = lora.LoraConfig(
    rank=4, alpha=8.0, dropout=0.05, keys=("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")
)
GEN = GenerationConfig(max_tokens=10, repetition_guard=False)
BACKENDS = ["numpy", "mlx"]


def random_adapter(tiny, folder, task="translate", seed=0):
    """An adapter in our format with random A and B (B is zero after add_lora: the adapter would do nothing)."""
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)
    lora.add_lora(asr.model.llm, CONFIG)
    rng = np.random.default_rng(seed)
    weights = {k: mx.array(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
               for k, v in lora.adapter_weights(asr.model.llm).items()}  # fmt: skip
    asr.model.llm.load_weights(list(weights.items()), strict=False)
    lora.save_adapter(asr.model.llm, folder, CONFIG, task)
    return folder


@pytest.fixture(scope="module")
def adapter_dir(tiny, tmp_path_factory):
    return random_adapter(tiny, tmp_path_factory.mktemp("lora") / "adapter")


def audio(name="jishu"):
    return read16k(zh_clip(name))


def prompt_of(asr, clip, task):
    return asr.prompt_embeddings(asr.audio_rows(asr.features(clip)), user_prompt(task))


def last_logits(asr, prompt, adapter):
    with lora.adapter_rows(adapter):
        return prefill(asr.model.llm, prompt[None], make_cache(asr.model.llm, prompt.shape[0] + 1))[0]


def test_config_presets_and_scale():
    assert lora.PRESETS["seed"].scale == 2.0 and lora.PRESETS["funasr"].scale == 2.0
    assert lora.PRESETS["funasr"].keys == ("self_attn.q_proj", "self_attn.v_proj")
    assert lora.PRESETS["seed"].training.learning_rate == 5e-5
    assert lora.PRESETS["seed"].lora_parameters()["scale"] == 2.0  # mlx-lm multiplies by it directly


@pytest.mark.parametrize("backend", BACKENDS)
def test_adapter_off_is_the_base_model_exactly_and_on_is_the_fused_model(tiny, adapter_dir, backend):
    base = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend=backend)
    unfused = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir, backend=backend)
    fused = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir, fuse=True, backend=backend)
    assert unfused.adapter is not None and not unfused.fused and fused.fused and lora.has_adapter(unfused.model.llm)
    assert not lora.has_adapter(fused.model.llm)
    clip = audio()
    prompt = prompt_of(base, clip, TaskMode.TRANSLATE_TO_EN)
    plain, off = last_logits(base, prompt, False), last_logits(unfused, prompt, False)
    on, folded = last_logits(unfused, prompt, True), last_logits(fused, prompt, True)
    assert mx.array_equal(off, plain)  # bit for bit
    assert float(mx.abs(on - folded).max()) / float(mx.abs(folded).max()) < 1e-4
    assert float(mx.abs(on - plain).max()) / float(mx.abs(plain).max()) > 1e-2  # the adapter does something
    # per request: Transcribe goes without the adapter (the base model's tokens), translate with it (the fused one's)
    assert unfused.transcribe(clip, generation=GEN).tokens == base.transcribe(clip, generation=GEN).tokens
    english = unfused.transcribe(clip, TaskMode.TRANSLATE_TO_EN, generation=GEN).tokens
    assert english == fused.transcribe(clip, TaskMode.TRANSLATE_TO_EN, generation=GEN).tokens
    assert english != base.transcribe(clip, TaskMode.TRANSLATE_TO_EN, generation=GEN).tokens
    assert unfused.can_translate and fused.can_translate and not base.can_translate


def test_numpy_decoder_equals_mlx_with_the_adapter_on_and_off(tiny, adapter_dir):
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir)
    prompt = prompt_of(asr, audio("pangrama"), TaskMode.TRANSLATE_TO_EN)
    eos = asr.model.args.eos_token_ids
    for adapter in (False, True):
        numpy = generate(asr.model.llm, prompt, GEN, eos, backend="numpy", adapter=adapter).tokens
        assert numpy == generate(asr.model.llm, prompt, GEN, eos, backend="mlx", adapter=adapter).tokens
    from dora_funasr_nano.model_core.fun_asr_nano.backends.numpy_decoder import NumpyQwen3

    mlx_logits = np.array(last_logits(asr, prompt, True))
    decoder = NumpyQwen3(asr.model.llm, prompt.shape[0] + 1, adapter=[True])
    got = decoder.forward(np.array(prompt))
    assert np.abs(got - mlx_logits).max() / np.abs(mlx_logits).max() < 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_mixes_rows_with_and_without_the_adapter(tiny, adapter_dir, backend):
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir, backend=backend)
    clips = [audio("nihao_shijie"), audio("jishu"), audio("pangrama")]
    tasks = [TaskMode.TRANSCRIBE, TaskMode.TRANSLATE_TO_EN, TaskMode.TRANSCRIBE]
    batched = asr.transcribe_batch(clips, tasks, generation=GEN)
    alone = [asr.transcribe(c, t, generation=GEN) for c, t in zip(clips, tasks, strict=True)]
    assert [r.tokens for r in batched] == [r.tokens for r in alone]
    # the same prompt in two rows, adapter off and on: the rows differ, each as it would alone
    prompt = prompt_of(asr, clips[1], TaskMode.TRANSLATE_TO_EN)
    eos = asr.model.args.eos_token_ids
    off, on = generate_batch(asr.model.llm, [prompt, prompt], GEN, eos, backend, adapter=[False, True])
    assert off.tokens == generate(asr.model.llm, prompt, GEN, eos, backend=backend, adapter=False).tokens
    assert on.tokens == generate(asr.model.llm, prompt, GEN, eos, backend=backend, adapter=True).tokens
    assert off.tokens != on.tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_transcript_and_english_from_one_model(tiny, adapter_dir, backend):
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir, backend=backend)
    clip = audio()
    chinese, english = asr.transcribe_and_translate(clip, GEN)
    assert chinese.tokens == asr.transcribe(clip, generation=GEN).tokens
    assert english.tokens == asr.transcribe(clip, TaskMode.TRANSLATE_TO_EN, generation=GEN).tokens
    assert english.source_text == chinese.text
    base = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)
    with pytest.raises(UnsupportedLanguage):
        base.transcribe_and_translate(clip, GEN)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_cache_never_mixes_rows_computed_with_and_without_the_adapter(tiny, adapter_dir, backend):
    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir)
    llm, eos, cache = asr.model.llm, asr.model.args.eos_token_ids, PromptCache()
    clip = audio()
    prompt = prompt_of(asr, clip, TaskMode.TRANSLATE_TO_EN)
    rows = np.array(prompt)
    off = generate(llm, prompt, GEN, eos, backend=backend, prompt_cache=cache, adapter=False)
    assert cache.shared_rows(rows, backend, adapter=False) == len(rows) - 1
    assert cache.shared_rows(rows, backend, adapter=True) == 0  # nothing computed with the adapter yet
    on = generate(llm, prompt, GEN, eos, backend=backend, prompt_cache=cache, adapter=True)
    assert on.tokens == generate(llm, prompt, GEN, eos, backend=backend, adapter=True).tokens
    assert cache.shared_rows(rows, backend, adapter=True) == len(rows) - 1
    # alternating requests each reuse their own keys and give what a fresh prompt gives
    for adapter, want in ((False, off), (True, on), (False, off)):
        assert (
            generate(llm, prompt, GEN, eos, backend=backend, prompt_cache=cache, adapter=adapter).tokens == want.tokens
        )
    assert off.tokens != on.tokens


def test_save_load_round_trip_and_training_gradients(tiny, adapter_dir, tmp_path):
    import mlx.nn as nn

    asr = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter_dir)
    config, task = lora.read_adapter_config(adapter_dir)
    assert (config.rank, config.alpha, config.scale, task) == (4, 8.0, 2.0, "translate")
    lora.save_adapter(asr.model.llm, tmp_path / "again", config, task)
    saved, again = mx.load(str(adapter_dir / lora.ADAPTER_FILE)), mx.load(str(tmp_path / "again" / lora.ADAPTER_FILE))
    assert sorted(saved) == sorted(again) and all(mx.array_equal(saved[k], again[k]) for k in saved)
    # only lora_a / lora_b train; dropout is active in training mode and the base is frozen
    llm = asr.model.llm
    trainable = dict(lora.adapter_weights(llm))
    from mlx.utils import tree_flatten

    assert sorted(k for k, _ in tree_flatten(llm.trainable_parameters())) == sorted(trainable)
    ids = mx.array([[151644, 872, 198, 100, 200]])
    llm.train()
    loss, grads = nn.value_and_grad(llm, lambda m: (m(ids)[:, -1] ** 2).mean())(llm)
    llm.eval()
    flat = dict(tree_flatten(grads))
    assert sorted(flat) == sorted(trainable) and all(float(mx.abs(g).max()) > 0 for g in flat.values())
