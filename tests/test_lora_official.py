"""Interoperability with the official LoRA recipe (funasr 1.4.16: FunASRNano with llm_conf.use_lora, the LoRA layer
of funasr/models/lora/layers.py), on tiny random checkpoints built by the official code:

- a use_lora checkpoint (model.pt with random non-zero lora_A / lora_B + config.yaml) loads through our loader and
  gives funasr's own logits and greedy tokens;
- an adapter in our format, exported to the official layout (dfn-lora export), loads into funasr's FunASRNano
  and gives there the tokens it gives here; dfn-lora extract brings it back unchanged.
"""

import json
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
import yaml
from dfn_testing import read16k, zh_clip
from test_lora_runtime import random_adapter

from dora_funasr_nano.model_core.fun_asr_nano import lora
from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig, generate
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TaskMode, user_prompt

LORA_CONF = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj", "down_proj"]}
MAX_NEW = 12
EOS = (151643, 151645)


def build_funasr(model_dir):
    """FunASRNano as funasr builds it from a checkpoint folder's config.yaml (use_lora and lora_conf included)."""
    from parity import import_funasr

    import_funasr()
    from funasr.models.fun_asr_nano.model import FunASRNano

    conf = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    llm_conf = {**conf["llm_conf"], "init_param_path": str(model_dir / "Qwen3-0.6B"), "llm_dtype": "fp32"}
    return FunASRNano(
        audio_encoder=conf["audio_encoder"], audio_encoder_conf=dict(conf["audio_encoder_conf"]),
        audio_adaptor=conf["audio_adaptor"], audio_adaptor_conf=dict(conf["audio_adaptor_conf"]),
        llm=conf["llm"], llm_conf=llm_conf, input_size=conf["input_size"],
    )  # fmt: skip


def funasr_model(model_dir):
    """...then its model.pt, strictly: every key funasr expects (lora_A / lora_B included), nothing else."""
    import torch

    model = build_funasr(model_dir)
    state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state, strict=True)
    model.eval()  # dropout off; funasr's LoRA Linear stays unmerged under the parent's eval (train(False))
    return model


def funasr_reference(model, tiny, audio, prompt):
    """funasr's own inference path (inference_prepare, HF greedy generate) for a prompt text."""
    import torch

    data_in = [model.generate_chatml(prompt, torch.from_numpy(audio))]
    with torch.no_grad():
        embeds, _, batch, _, _ = model.inference_prepare(
            data_in, None, ["k"], tiny.tokenizer, tiny.frontend, device="cpu"
        )
        logits = model.llm(inputs_embeds=embeds).logits[0, -1].numpy()
        generated = model.llm.generate(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], max_new_tokens=MAX_NEW, do_sample=False,
            pad_token_id=151645,
        )  # fmt: skip
    return logits, [t for t in generated[0].tolist() if t not in EOS]


def ours_reference(asr, audio, prompt, adapter=True):
    embeds = asr.prompt_embeddings(asr.audio_rows(asr.features(audio)), prompt)
    with lora.adapter_rows(adapter):
        logits = asr.model.llm(mx.zeros((1, 0), mx.int32), input_embeddings=embeds[None])[0, -1]
    gen = GenerationConfig(max_tokens=MAX_NEW, repetition_guard=False)
    return np.array(logits), generate(asr.model.llm, embeds, gen, asr.model.args.eos_token_ids, adapter=adapter).tokens


def rel_err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def same_tokens(ours, theirs):
    return ours == theirs[: len(ours)] and len(ours) == len(theirs)


@pytest.fixture(scope="module")
def official_lora_dir(tiny, tmp_path_factory):
    """The tiny checkpoint as the official recipe would leave it: use_lora, lora_A and lora_B random."""
    import shutil

    import torch

    out = tmp_path_factory.mktemp("official-lora")
    shutil.copytree(tiny.official_dir / "Qwen3-0.6B", out / "Qwen3-0.6B")
    conf = yaml.safe_load((tiny.official_dir / "config.yaml").read_text(encoding="utf-8"))
    conf["llm_conf"] = {**conf["llm_conf"], "use_lora": True, "lora_conf": LORA_CONF}
    (out / "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    model = build_funasr(out)
    base = torch.load(tiny.official_dir / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    missing, unexpected = model.load_state_dict(base, strict=False)
    assert not unexpected and len(missing) == 2 * 3 * 2 and all(k.endswith(("lora_A", "lora_B")) for k in missing)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:  # lora_B starts at zero upstream: make both count
                p.copy_(torch.randn_like(p) * 0.3)
    torch.save({"state_dict": model.state_dict()}, out / "model.pt")
    return out


def test_official_use_lora_checkpoint_gives_funasrs_logits_and_tokens(tiny, official_lora_dir):
    reference = funasr_model(official_lora_dir)
    asr = FunAsrNano.load(official_lora_dir, dtype=mx.float32)
    assert asr.adapter is not None and asr.adapter.task == "transcribe"  # the recipe fine-tunes transcription
    assert asr.adapter.config.keys == ("mlp.down_proj", "self_attn.q_proj", "self_attn.v_proj")
    assert asr.adapter.config.scale == 2.0 and asr.adapter.config.dropout == 0.05
    base = FunAsrNano.load(tiny.official_dir, dtype=mx.float32)
    for name in ("jishu", "pangrama"):
        audio = read16k(zh_clip(name))
        for prompt in (user_prompt(TaskMode.AUTO), user_prompt(TaskMode.TRANSLATE_TO_EN)):
            want_logits, want_tokens = funasr_reference(reference, tiny, audio, prompt)
            logits, tokens = ours_reference(asr, audio, prompt)
            assert rel_err(logits, want_logits) < 1e-4
            assert same_tokens(tokens, want_tokens)
            base_logits, _ = ours_reference(base, audio, prompt)
            assert rel_err(base_logits, want_logits) > 1e-2  # the official adapter does something
        # and through the public API: transcription goes through a transcription adapter
        gen = GenerationConfig(max_tokens=MAX_NEW, repetition_guard=False)
        assert same_tokens(asr.transcribe(audio, TaskMode.AUTO, generation=gen).tokens,
                           funasr_reference(reference, tiny, audio, user_prompt(TaskMode.AUTO))[1])  # fmt: skip


def run_tool(*args):
    return subprocess.run([sys.executable, "-m", "dora_funasr_nano.model_core.tools.lora_tool", *map(str, args)],
                          capture_output=True, text=True, check=True)  # fmt: skip


def test_our_adapter_exported_to_the_official_layout_runs_in_funasr(tiny, tmp_path):
    adapter = random_adapter(tiny, tmp_path / "ours", seed=3)
    run_tool("export", adapter, tmp_path / "exported", "--model", tiny.official_dir)
    conf = yaml.safe_load((tmp_path / "exported" / "config.yaml").read_text(encoding="utf-8"))
    assert conf["llm_conf"]["use_lora"] is True
    assert conf["llm_conf"]["lora_conf"] == {"r": 4, "lora_alpha": 8.0, "lora_dropout": 0.05, "task": "translate",
                                             "target_modules": ["down_proj", "q_proj", "v_proj"]}  # fmt: skip
    reference = funasr_model(tmp_path / "exported")  # strict: every key funasr expects, lora_A / lora_B included
    ours = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter)
    audio = read16k(zh_clip("jishu"))
    prompt = user_prompt(TaskMode.TRANSLATE_TO_EN)
    want_logits, want_tokens = funasr_reference(reference, tiny, audio, prompt)
    logits, tokens = ours_reference(ours, audio, prompt)
    assert rel_err(logits, want_logits) < 1e-4 and same_tokens(tokens, want_tokens)
    assert same_tokens(ours.transcribe(audio, TaskMode.TRANSLATE_TO_EN,
                                       generation=GenerationConfig(MAX_NEW, repetition_guard=False)).tokens,
                       want_tokens)  # fmt: skip
    # the exported folder loads here too (a translate adapter, from lora_conf.task), and extracts back unchanged
    again = FunAsrNano.load(tmp_path / "exported", dtype=mx.float32)
    assert again.can_translate and again.adapter is not None and again.adapter.task == "translate"
    run_tool("extract", tmp_path / "exported", tmp_path / "extracted")
    a, b = mx.load(str(adapter / lora.ADAPTER_FILE)), mx.load(str(tmp_path / "extracted" / lora.ADAPTER_FILE))
    assert sorted(a) == sorted(b) and all(mx.array_equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "extracted" / lora.CONFIG_FILE).read_text())
    assert meta["task"] == "translate" and meta["lora_parameters"]["scale"] == 2.0


def test_fuse_writes_a_standalone_checkpoint(tiny, tmp_path):
    adapter = random_adapter(tiny, tmp_path / "ours", seed=4)
    run_tool("fuse", adapter, tmp_path / "fused", "--model", tiny.official_dir)
    fused = FunAsrNano.load(tmp_path / "fused", dtype=mx.float32)
    assert not lora.has_adapter(fused.model.llm) and fused.fused and fused.can_translate
    unfused = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, adapter=adapter)
    audio = read16k(zh_clip("pangrama"))
    gen = GenerationConfig(MAX_NEW, repetition_guard=False)
    prompt = user_prompt(TaskMode.TRANSLATE_TO_EN)
    assert rel_err(ours_reference(fused, audio, prompt)[0], ours_reference(unfused, audio, prompt)[0]) < 1e-4
    want = unfused.transcribe(audio, TaskMode.TRANSLATE_TO_EN, generation=gen).tokens
    assert fused.transcribe(audio, TaskMode.TRANSLATE_TO_EN, generation=gen).tokens == want
