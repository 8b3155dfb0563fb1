"""The whole Fun-ASR-Nano path against the official PyTorch code, on tiny random checkpoints written in the
published formats and loaded through our real loaders."""

import mlx.core as mx
import numpy as np
import pytest
from dfn_testing import read16k, zh_clip
from mlx.utils import tree_map

from dora_funasr_nano.model_core.common.errors import (
    AudioTooLong,
    AudioTooShort,
    EmptyAudio,
    InvalidAudio,
    ModelNotLoaded,
    UnsupportedLanguage,
)
from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.backends import Backends
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig, repeated_tail
from dora_funasr_nano.model_core.fun_asr_nano.loading import load_model
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TaskMode

MAX_NEW = 12


@pytest.fixture(scope="module")
def ours(tiny):
    return FunAsrNano.load(tiny.official_dir, dtype=mx.float32)


def clips():
    nihao, jishu, pangrama = (read16k(zh_clip(n)) for n in ("nihao_shijie", "jishu", "pangrama"))
    return {"0.5s": nihao[:8000], "1.4s": nihao, "2.6s": jishu, "4.1s": pangrama, "odd": jishu[: 16000 + 123]}


@pytest.fixture(scope="module")
def references(tiny):
    import tiny_checkpoint

    return {name: tiny_checkpoint.reference_transcribe(tiny, audio, MAX_NEW) for name, audio in clips().items()}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


@pytest.mark.parametrize("name", list(clips()))
def test_audio_rows_and_prompt_match_upstream(ours, references, name):
    ref = references[name]
    feats = ours.features(clips()[name])
    rows = ours.audio_rows(feats)
    assert rows.shape[0] == ref["fake_token_len"] == ours.model.audio_token_count(feats.shape[0])
    assert rel_err(rows, ref["adaptor_out"][: ref["fake_token_len"]]) < 1e-4
    embeds = ours.prompt_embeddings(rows, ref["prompt"])
    assert embeds.shape == ref["embeds"].shape  # same prompt tokens around the audio rows
    assert rel_err(embeds, ref["embeds"]) < 1e-4


@pytest.mark.parametrize("name", list(clips()))
def test_first_step_logits_match_upstream(ours, references, name):
    ref = references[name]
    embeds = ours.prompt_embeddings(ours.audio_rows(ours.features(clips()[name])), ref["prompt"])
    logits = ours.model.llm(mx.zeros((1, 0), mx.int32), input_embeddings=embeds[None])[0, -1]
    assert rel_err(logits, ref["first_logits"]) < 1e-4
    assert int(mx.argmax(logits)) == int(np.argmax(ref["first_logits"]))


@pytest.mark.parametrize("name", list(clips()))
def test_greedy_tokens_identical_to_upstream(ours, references, name):
    ref_tokens = [t for t in references[name]["tokens"] if t not in (151643, 151645)]
    cfg = GenerationConfig(max_tokens=MAX_NEW, repetition_guard=False)
    result = ours.transcribe(clips()[name], TaskMode.AUTO, generation=cfg)
    assert result.tokens == ref_tokens[: len(result.tokens)] and len(result.tokens) == len(ref_tokens)


def test_prompts_as_upstream_builds_them(tiny, ours):
    model = tiny.torch_model
    from dora_funasr_nano.model_core.fun_asr_nano.prompts import user_prompt

    assert user_prompt(TaskMode.AUTO) == model.get_prompt([], None, True) == "语音转写："
    assert user_prompt(TaskMode.TRANSCRIBE) == model.get_prompt([], "中文", True) == "语音转写成中文："
    assert user_prompt(TaskMode.TRANSCRIBE_EN, itn=False) == model.get_prompt([], "英文", False)
    assert user_prompt(TaskMode.TRANSCRIBE, ["开放时间", "地址"]) == model.get_prompt(["开放时间", "地址"], "中文")


def test_mlx_community_layout_loads_the_same_weights(tiny):
    official, _ = load_model(tiny.official_dir, mx.float32)
    community, _ = load_model(tiny.mlx_community_dir, mx.float32)
    from mlx.utils import tree_flatten

    a, b = dict(tree_flatten(official.parameters())), dict(tree_flatten(community.parameters()))
    assert a.keys() == b.keys()
    assert all(mx.array_equal(a[k], b[k]) for k in a)


def test_bad_audio_gets_typed_errors(ours):
    with pytest.raises(EmptyAudio):
        ours.transcribe(np.zeros(0, np.float32))
    with pytest.raises(AudioTooShort):
        ours.transcribe(np.zeros(800, np.float32))
    with pytest.raises(AudioTooLong):
        ours.transcribe(np.zeros(31 * 16000, np.float32))
    x = read16k(zh_clip("jishu")).copy()
    x[7] = np.nan
    with pytest.raises(InvalidAudio):
        ours.transcribe(x)
    with pytest.raises(InvalidAudio):
        ours.transcribe(np.zeros((2, 16000), np.float32))


def test_base_checkpoint_refuses_to_translate(ours):
    with pytest.raises(UnsupportedLanguage, match="transcribes only"):
        ours.translate(read16k(zh_clip("jishu")))


class Echo:
    """A text translator stand-in that tags what it is given."""

    def __init__(self) -> None:
        self.calls = []

    def translate(self, text, *, source_language="zh", context=(), on_partial=None):
        from dora_funasr_nano.model_core.translation.base import Translation

        self.calls.append(text)
        return Translation(f"EN[{text}]", 1, "stop", 0.0)


@pytest.mark.parametrize("by_sentence", [False, True])
def test_two_stage_translate_transcribes_then_translates(ours, by_sentence):
    from dora_funasr_nano.model_core.fun_asr_nano.api import TranslationConfig
    from dora_funasr_nano.model_core.translation.sentences import split_sentences

    audio = read16k(zh_clip("jishu"))
    transcript = ours.transcribe(audio).text
    partials, echo = [], Echo()
    result = ours.translate(
        audio, TranslationConfig(stream_on_sentence=by_sentence), translator=echo,
        on_partial=lambda zh, en: partials.append((zh, en)),
    )  # fmt: skip
    assert result.source_text == transcript and "translate" in result.timings
    if by_sentence:
        done, tail = split_sentences(transcript)
        assert [zh for zh, _ in partials] == echo.calls == done + ([tail] if tail else [])
        assert result.text == " ".join(f"EN[{s}]" for s in echo.calls)
    else:
        assert echo.calls == [transcript] and result.text == f"EN[{transcript}]" and partials == []


def test_missing_model_is_model_not_loaded(tmp_path, monkeypatch):
    with pytest.raises(ModelNotLoaded, match="neither"):
        load_model(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotLoaded, match="huggingface-cli download"):
        load_model("someone/not-cached-model")


def test_streaming_callback_sees_every_token(ours):
    seen = []
    result = ours.transcribe(read16k(zh_clip("jishu")), generation=GenerationConfig(max_tokens=6), on_token=seen.append)
    assert seen == result.tokens and len(seen) <= 6


def test_repetition_guard():
    assert repeated_tail([1, 2, 3]) == 0
    assert repeated_tail([5, 6] + [7] * 24) == 23
    assert repeated_tail([9, 1, 2, 3] * 8) == 20  # 4-gram x 6 = 24 tokens loop; one copy is kept
    assert repeated_tail([9, 1, 2, 3] * 5) == 0  # 20 tokens: below the span that counts as a loop
    assert repeated_tail(list(range(100))) == 0


@pytest.mark.parametrize("decode", ["numpy", "mlx"])  # numpy: the Linux CPU default (auto)
def test_batched_decoding_equals_one_at_a_time(ours, decode, monkeypatch):
    monkeypatch.setattr(ours, "backends", Backends(ours.backends.encoder, decode))
    audios = list(clips().values())
    cfg = GenerationConfig(max_tokens=MAX_NEW, repetition_guard=False)
    single = [ours.transcribe(a, TaskMode.AUTO, generation=cfg) for a in audios]
    batched = ours.transcribe_batch(audios, TaskMode.AUTO, generation=cfg)
    assert [r.tokens for r in batched] == [r.tokens for r in single]
    assert [r.text for r in batched] == [r.text for r in single]


@pytest.mark.parametrize("name", ["1.4s", "4.1s"])
def test_numpy_decode_path_equals_mlx_decode(ours, name):
    from dora_funasr_nano.model_core.fun_asr_nano.generate import generate
    from dora_funasr_nano.model_core.fun_asr_nano.prompts import user_prompt

    prompt = ours.prompt_embeddings(ours.audio_rows(ours.features(clips()[name])), user_prompt(TaskMode.AUTO))
    cfg = GenerationConfig(max_tokens=16, repetition_guard=False)
    eos = ours.model.args.eos_token_ids
    via_numpy = generate(ours.model.llm, prompt, cfg, eos, backend="numpy")
    via_mlx = generate(ours.model.llm, prompt, cfg, eos, backend="mlx")
    assert via_numpy.tokens == via_mlx.tokens and len(via_numpy.tokens) > 0
    one = GenerationConfig(max_tokens=1, repetition_guard=False)
    assert [generate(ours.model.llm, prompt, one, eos, backend=b).tokens for b in ("numpy", "mlx")] == [
        via_mlx.tokens[:1]
    ] * 2


def test_low_memory_stores_audio_weights_in_bf16_and_computes_in_fp32(tiny, ours):
    from mlx.utils import tree_flatten

    # both sides in the MLX encoder (the numpy encoder's bf16 path is tested in test_encoder_adaptor.py)
    small = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, low_memory=True, backend="mlx")
    dtypes = {k: v.dtype for k, v in tree_flatten(small.model.parameters())}
    assert {d for k, d in dtypes.items() if k.startswith(("audio_encoder.", "audio_adaptor."))} == {mx.bfloat16}
    assert {d for k, d in dtypes.items() if k.startswith("llm.")} == {mx.float32}
    feats = ours.features(read16k(zh_clip("jishu")))
    got = small.audio_rows(feats)
    assert got.dtype == mx.float32  # bf16 weights are widened inside each product
    # exactly the fp32 model with its audio weights rounded to bf16: the arithmetic itself stays fp32
    rounded = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend="mlx")
    for part in (rounded.model.audio_encoder, rounded.model.audio_adaptor):
        part.update(tree_map(lambda w: w.astype(mx.bfloat16).astype(mx.float32), part.parameters()))
    want = rounded.audio_rows(feats)
    assert float(mx.abs(got - want).max()) / float(mx.abs(want).max()) < 1e-5
    # the rounding itself, through every layer of this random (badly conditioned) model
    full = ours.audio_rows(feats)
    assert float(mx.linalg.norm(got - full)) / float(mx.linalg.norm(full)) < 5e-2


@pytest.mark.parametrize("backend", ["numpy", "mlx"])
def test_prompt_cache_reuses_the_template_and_keeps_the_tokens(ours, backend):
    """Each prompt after the first skips the chat template's rows (all of them, no more: the audio rows differ)
    and decodes the tokens a fresh prompt gives; hotwords change the template, so fewer rows are shared."""
    from dora_funasr_nano.model_core.fun_asr_nano.cache import PromptCache
    from dora_funasr_nano.model_core.fun_asr_nano.generate import generate
    from dora_funasr_nano.model_core.fun_asr_nano.prompts import chat_prompt, user_prompt

    cfg = GenerationConfig(max_tokens=MAX_NEW, repetition_guard=False)
    eos, llm, cache = ours.model.args.eos_token_ids, ours.model.llm, PromptCache()
    text = user_prompt(TaskMode.AUTO)
    template = len(ours.tokenizer.encode(chat_prompt(text).prefix))
    for i, audio in enumerate(list(clips().values())[:3]):
        prompt = ours.prompt_embeddings(ours.audio_rows(ours.features(audio)), text)
        rows = np.array(prompt.astype(mx.float32))
        assert cache.shared_rows(rows, backend) == (template if i else 0)
        reused = generate(llm, prompt, cfg, eos, backend=backend, prompt_cache=cache)
        assert reused.tokens == generate(llm, prompt, cfg, eos, backend=backend).tokens
    hot = ours.prompt_embeddings(ours.audio_rows(ours.features(audio)), user_prompt(TaskMode.AUTO, ["阿里巴巴"]))
    assert 0 < cache.shared_rows(np.array(hot.astype(mx.float32)), backend) < template
    cache.clear()
    assert cache.shared_rows(rows, backend) == 0


def test_backend_is_chosen_once_and_reported(tiny, ours, monkeypatch):
    """auto picks numpy on this CPU for fp32 weights; every Result says what computed it; numpy is refused (not
    silently replaced) where it cannot run; $DFN_BACKEND is only the default."""
    audio = read16k(zh_clip("jishu"))
    cfg = GenerationConfig(max_tokens=3)
    assert ours.backends == Backends("numpy", "numpy")
    assert ours.transcribe(audio, generation=cfg).backends == Backends("numpy", "numpy")
    assert {r.backends for r in ours.transcribe_batch([audio, audio[:16000]], generation=cfg)} == {
        Backends("mlx", "numpy")  # a padded batch's encoder pass is MLX's
    }
    on_mlx = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend="mlx")
    result = on_mlx.transcribe(audio, generation=cfg)
    assert result.backends == Backends("mlx", "mlx") and result.tokens == ours.transcribe(audio, generation=cfg).tokens
    monkeypatch.setenv("DFN_BACKEND", "mlx")
    assert FunAsrNano.load(tiny.official_dir, dtype=mx.float32).backends == Backends("mlx", "mlx")
    assert FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend="numpy").backends == Backends("numpy", "numpy")
    with pytest.raises(ValueError, match="numpy backend needs"):
        FunAsrNano.load(tiny.official_dir, dtype=mx.bfloat16, backend="numpy")
    assert FunAsrNano.load(tiny.official_dir, dtype=mx.bfloat16, backend="auto").backends == Backends("numpy", "mlx")
    with pytest.raises(ValueError, match="backend must be one of"):
        FunAsrNano.load(tiny.official_dir, backend="cuda")
