"""One LLM step at the real Qwen3-0.6B shapes (random weights): our MLX prefill and the numpy Linux path against
transformers' Qwen3 (the LLM upstream FunASRNano builds), on prompt embeddings with audio-like scale."""

import mlx.core as mx
import numpy as np
import pytest
from parity import import_funasr

from dora_funasr_nano.model_core.fun_asr_nano.backends.numpy_decoder import NumpyQwen3
from dora_funasr_nano.model_core.fun_asr_nano.cache import PromptCache, make_cache, prefill

QWEN3_0_6B = {
    "model_type": "qwen3", "hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "attention_bias": False,
}  # fmt: skip


@pytest.fixture(scope="module")
def pair():
    import_funasr()  # only for its checks that torch is there (skips locally / fails in CI otherwise)
    import torch
    from mlx_lm.models import qwen3
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    reference = Qwen3ForCausalLM(Qwen3Config(**QWEN3_0_6B)).eval()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))  # norms random too, so eps/placement mistakes show
    ours = qwen3.Model(qwen3.ModelArgs.from_dict(QWEN3_0_6B))
    weights = {k: mx.array(v.numpy()) for k, v in reference.state_dict().items() if k != "lm_head.weight"}
    ours.load_weights(list(weights.items()), strict=True)
    mx.eval(ours.parameters())
    return reference, ours


def test_first_step_logits_at_real_shapes(pair):
    import torch

    reference, ours = pair
    rng = np.random.default_rng(0)
    embeds = rng.standard_normal((36, 1024)).astype(np.float32) * 0.05  # 36 positions: a 5 s prompt
    embeds[20:31] *= 100  # audio rows are ~100x larger than token embeddings (adaptor output std ~28)
    with torch.no_grad():
        want = reference(inputs_embeds=torch.from_numpy(embeds)[None]).logits[0, -1].numpy()
    got_mlx = np.asarray(prefill(ours, mx.array(embeds)[None], make_cache(ours, 40))[0])
    got_numpy = NumpyQwen3(ours, 40).forward(embeds)
    scale = np.abs(want).max()
    assert np.abs(got_mlx - want).max() / scale < 1e-3
    assert np.abs(got_numpy - want).max() / scale < 1e-3
    assert int(np.argmax(got_mlx)) == int(np.argmax(got_numpy)) == int(np.argmax(want))


def test_prompt_cache_reuses_the_shared_prefix_at_real_shapes(pair):
    """A second prompt that begins with the same 20 rows (the chat template) skips them and gets the logits a
    fresh pass gives; a prompt that differs from row 0 reuses nothing."""
    _, ours = pair
    rng = np.random.default_rng(1)
    template = rng.standard_normal((20, 1024)).astype(np.float32) * 0.05
    first, second = (
        np.concatenate([template, rng.standard_normal((16, 1024)).astype(np.float32) * 5]) for _ in range(2)
    )
    cache = PromptCache()
    cache.prefill(NumpyQwen3(ours, 40), first)
    assert cache.shared_rows(second) == 20
    assert cache.shared_rows(first) == 35  # identical: all but the row that yields the logits
    decoder = NumpyQwen3(ours, 40)
    got = cache.prefill(decoder, second)
    want = NumpyQwen3(ours, 40).forward(second)
    assert decoder.length == 36
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5
    assert int(np.argmax(got)) == int(np.argmax(want))
    other = second.copy()
    other[0] += 1.0
    assert cache.shared_rows(other) == 0
    with pytest.raises(ValueError, match="not run yet"):
        cache.prefill(decoder, second)


def test_numpy_batch_rows_equal_single_prompts_at_real_shapes(pair):
    """Two left-padded prompts of different lengths in one NumpyQwen3 batch: each row's logits, for the prompt
    and for the next token, are the ones its prompt gives alone."""
    _, ours = pair
    rng = np.random.default_rng(2)
    prompts = [rng.standard_normal((n, 1024)).astype(np.float32) * 0.5 for n in (36, 29)]
    batch = np.zeros((2, 36, 1024), np.float32)
    batch[0], batch[1, 7:] = prompts
    decoder = NumpyQwen3(ours, 40, pad=[0, 7])
    got, got_next = decoder.forward_batch(batch), decoder.step_batch([11, 12])
    for row, (prompt, token) in enumerate(zip(prompts, (11, 12), strict=True)):
        alone = NumpyQwen3(ours, 40)
        want, want_next = alone.forward(prompt), alone.step(token)
        for g, w in ((got[row], want), (got_next[row], want_next)):
            assert np.abs(g - w).max() / np.abs(w).max() < 1e-5
            assert int(np.argmax(g)) == int(np.argmax(w))
