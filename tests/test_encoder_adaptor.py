"""Parity of the MLX audio encoder and adaptor with the official PyTorch code (funasr 1.4.16) and with mlx-audio.

Every weight is random, LayerNorm weights and biases included, so a wrong eps or norm placement shows. Weights go
from the torch modules' state_dict, prefixed as in the checkpoint (`audio_encoder.` / `audio_adaptor.`), through
our `sanitize` (which also converts the torch FSMN conv layout).

Error measure throughout: rel_err(a, ref) = max|a - ref| / rms(ref), in fp32; tolerance TOL = 1e-4 everywhere.
Measured on a 2-core x86-64 machine: tiny configs ≤ 5e-6 (encoder) / 2e-6 (adaptor); real shapes (50 + 20 encoder
layers, 5 s of features) ~6e-6 / ~5e-6.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from parity import import_funasr

from dora_funasr_nano.model_core.fun_asr_nano.adaptor import AdaptorArgs, AudioAdaptor, fake_token_len
from dora_funasr_nano.model_core.fun_asr_nano.backends import numpy_encoder
from dora_funasr_nano.model_core.fun_asr_nano.encoder import EncoderArgs, SenseVoiceEncoderSmall

TINY_ENC = dict(
    input_size=560, output_size=16, attention_heads=4, linear_units=32, num_blocks=3, tp_blocks=2, kernel_size=11
)
TINY_ADA = dict(downsample_rate=1, encoder_dim=16, llm_dim=32, ffn_dim=24, n_layer=2, attention_heads=4)
REAL_ENC = dict(
    input_size=560, output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, tp_blocks=20, kernel_size=11
)
REAL_ADA = dict(downsample_rate=1, encoder_dim=512, llm_dim=1024, ffn_dim=2048, n_layer=2, attention_heads=8)
TOL = 1e-4


def rel_err(a, ref) -> float:
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(a - ref).max() / np.sqrt((ref**2).mean()))


# --- building the references -----------------------------------------------------------------------------------


def randomize(module):
    """Random LayerNorm weights and biases on top of torch's (random) default init of Linear/Conv; eval mode."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name.rsplit(".", 2)[-2]:
                p.copy_(torch.rand_like(p) + 0.5 if name.endswith("weight") else 0.3 * torch.randn_like(p))
    return module.eval()


def torch_encoder(seed=0, sanm_shfit=0, **conf):
    import_funasr()
    import torch
    from funasr.models.sense_voice.model import SenseVoiceEncoderSmall as TorchEncoder

    torch.manual_seed(seed)
    return randomize(TorchEncoder(sanm_shfit=sanm_shfit, **conf))


def torch_adaptor(seed=1, **conf):
    import_funasr()
    import torch
    from funasr.models.llm_asr.adaptor import Transformer

    torch.manual_seed(seed)
    return randomize(Transformer(**conf))


def checkpoint_weights(module, prefix: str) -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().float().numpy() for k, v in module.state_dict().items()}


def mlx_from(torch_module, cls, args, prefix: str):
    model = cls(args)
    weights = model.sanitize(checkpoint_weights(torch_module, prefix))
    model.load_weights([(k, mx.array(v)) for k, v in weights.items()], strict=True)
    mx.eval(model.parameters())
    return model


def run_torch_encoder(enc, x: np.ndarray, lengths) -> np.ndarray:
    import torch

    with torch.no_grad():
        # the upstream encoder scales its input in place: give it a copy
        out, olens = enc(torch.from_numpy(x.copy()), torch.tensor(lengths, dtype=torch.int32))
    assert olens.tolist() == list(lengths)
    return out.numpy()


def run_torch_adaptor(ada, x: np.ndarray, lengths) -> tuple[np.ndarray, list[int]]:
    import torch

    with torch.no_grad():
        out, olens = ada(torch.from_numpy(x.copy()), torch.tensor(lengths, dtype=torch.int32))
    return out.numpy(), olens.tolist()


def features(seed: int, b: int, t: int, d: int = 560) -> np.ndarray:
    """Roughly log-mel scaled: N(-5, 3)."""
    return (np.random.default_rng(seed).standard_normal((b, t, d)) * 3 - 5).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    enc_t, ada_t = torch_encoder(**TINY_ENC), torch_adaptor(**TINY_ADA)
    enc = mlx_from(enc_t, SenseVoiceEncoderSmall, EncoderArgs.from_dict(TINY_ENC), "audio_encoder.")
    ada = mlx_from(ada_t, AudioAdaptor, AdaptorArgs.from_dict(TINY_ADA), "audio_adaptor.")
    return enc_t, ada_t, enc, ada


# --- vs funasr (ground truth) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 2, 7, 50])
def test_encoder_and_adaptor_match_funasr(tiny, t):
    enc_t, ada_t, enc, ada = tiny
    x = features(t, 2, t)
    ref = run_torch_encoder(enc_t, x, [t, t])
    out = enc(mx.array(x))
    assert out.shape == (2, t, 16)
    assert rel_err(out, ref) < TOL
    assert rel_err(mx.array(numpy_encoder.encode(enc, x[0])), ref[:1][0]) < TOL  # the numpy path, one segment

    ref_a, ref_lens = run_torch_adaptor(ada_t, ref, [t, t])
    out_a, lens = ada(mx.array(ref))
    assert out_a.shape == (2, t, 32) and lens.tolist() == ref_lens == [t, t]
    assert rel_err(out_a, ref_a) < TOL


def test_padded_batch_matches_funasr_and_single_runs(tiny):
    enc_t, ada_t, enc, ada = tiny
    lengths = [50, 23, 7, 1]
    x = features(7, len(lengths), max(lengths))
    x[np.arange(50)[None, :] >= np.array(lengths)[:, None]] = 0.0  # padding as a collator would fill it

    # every frame, padded ones included, as upstream computes it
    ref = run_torch_encoder(enc_t, x, lengths)
    out = enc(mx.array(x), mx.array(lengths))
    assert rel_err(out, ref) < TOL
    ref_a, ref_lens = run_torch_adaptor(ada_t, ref, lengths)
    out_a, lens = ada(out, mx.array(lengths))
    assert lens.tolist() == ref_lens == lengths
    assert rel_err(out_a, ref_a) < TOL

    # valid frames of each row equal the unpadded single run
    for i, n in enumerate(lengths):
        single = enc(mx.array(x[i : i + 1, :n]))
        assert rel_err(out[i, :n], single[0]) < TOL
        single_a, _ = ada(single)
        assert rel_err(out_a[i, :n], single_a[0]) < TOL


def test_full_length_lengths_take_the_same_path_as_none(tiny):
    _, _, enc, ada = tiny
    x = mx.array(features(3, 2, 9))
    assert mx.array_equal(enc(x), enc(x, mx.array([9, 9])))
    assert mx.array_equal(ada(enc(x))[0], ada(enc(x), [9, 9])[0])
    with pytest.raises(ValueError):
        enc(x, mx.array([9, 0]))
    with pytest.raises(ValueError):
        enc(x, mx.array([10, 9]))


@pytest.mark.parametrize("shift", [1, 3])
def test_sanm_shift_matches_funasr(shift):
    conf = dict(TINY_ENC, num_blocks=2, tp_blocks=1)
    enc_t = torch_encoder(seed=5, sanm_shfit=shift, **conf)
    args = EncoderArgs.from_dict(dict(conf, sanm_shfit=shift))
    assert args.sanm_shift == shift
    enc = mlx_from(enc_t, SenseVoiceEncoderSmall, args, "audio_encoder.")
    for lengths in ([13, 13], [13, 6]):
        x = features(shift, 2, 13)
        assert rel_err(enc(mx.array(x), mx.array(lengths)), run_torch_encoder(enc_t, x, lengths)) < TOL


@pytest.mark.parametrize("k", [2, 3])
def test_adaptor_downsampling_matches_funasr(k):
    conf = dict(TINY_ADA, downsample_rate=k)
    ada_t = torch_adaptor(seed=k, **conf)
    ada = mlx_from(ada_t, AudioAdaptor, AdaptorArgs.from_dict(conf), "audio_adaptor.")
    for t, lengths in ((1, [1, 1]), (7, [7, 7]), (11, [11, 4])):
        x = features(t, 2, t, 16)
        ref, ref_lens = run_torch_adaptor(ada_t, x, lengths)
        out, lens = ada(mx.array(x), mx.array(lengths))
        assert out.shape == (2, (t - 1) // k + 1, 32) and lens.tolist() == ref_lens
        assert rel_err(out, ref) < TOL


# --- vs mlx-audio (second, independent port) -------------------------------------------------------------------


def mlx_audio_modules(enc_conf: dict, ada_conf: dict):
    pytest.importorskip("mlx_audio")
    from mlx_audio.stt.models.fun_asr_nano.config import AdaptorConfig, SenseVoiceEncoderConfig
    from mlx_audio.stt.models.fun_asr_nano.fun_asr_nano import AudioAdaptorTransformer
    from mlx_audio.stt.models.fun_asr_nano.fun_asr_nano import SenseVoiceEncoderSmall as PeerEncoder

    enc = PeerEncoder(enc_conf["input_size"], SenseVoiceEncoderConfig.from_dict(enc_conf))
    ada = AudioAdaptorTransformer(AdaptorConfig.from_dict(ada_conf))
    return enc, ada


def test_matches_mlx_audio(tiny):
    _, _, enc, ada = tiny
    peer_enc, peer_ada = mlx_audio_modules(TINY_ENC, TINY_ADA)
    # same weights, same key names (ours are already in MLX layout)
    peer_enc.load_weights(_flat(enc), strict=True)
    peer_ada.load_weights(_flat(ada), strict=True)

    lengths = [50, 31]
    x = mx.array(features(11, 2, 50))
    peer_out, _ = peer_enc(x, mx.array(lengths))
    out = enc(x, mx.array(lengths))
    valid = np.arange(50)[None, :] < np.array(lengths)[:, None]
    # mlx-audio masks scores with -1e9 instead of -inf: the same softmax; all frames agree
    assert rel_err(np.asarray(out)[valid], np.asarray(peer_out)[valid]) < TOL
    assert rel_err(out, peer_out) < TOL

    # The adaptor differs by design: mlx-audio's LayerNorms use eps 1e-5, upstream's (and ours) 1e-12. With mlx-audio's
    # eps set to 1e-12 the two agree; with its default they differ wherever the LayerNorm input variance is not
    # ≫ 1e-5. To make that plain, shrink linear2 (the first block's norm1 input) 100× in both adaptors.
    shrunk = [(k, v * 1e-2 if k.startswith("linear2.") else v) for k, v in _flat(ada)]
    ada_small = AudioAdaptor(ada.args)
    ada_small.load_weights(shrunk, strict=True)
    peer_ada.load_weights(shrunk, strict=True)
    ours, _ = ada_small(out, mx.array(lengths))
    peer_default, _ = peer_ada(out, mx.array(lengths))
    for block in peer_ada.blocks:
        block.norm1.eps = block.norm2.eps = 1e-12
    peer_fixed, _ = peer_ada(out, mx.array(lengths))
    assert rel_err(ours, peer_fixed) < TOL
    assert rel_err(ours, peer_default) > 100 * TOL


def _flat(module) -> list[tuple[str, mx.array]]:
    from mlx.utils import tree_flatten

    return tree_flatten(module.parameters())


# --- real shapes ---------------------------------------------------------------------------------------------------


def test_real_shapes_match_funasr():
    """Full-size encoder (221M parameters) + adaptor, random weights, ~5 s of features (T_lfr 84), fp32."""
    enc_t, ada_t = torch_encoder(seed=21, **REAL_ENC), torch_adaptor(seed=22, **REAL_ADA)
    enc = mlx_from(enc_t, SenseVoiceEncoderSmall, EncoderArgs.from_dict(REAL_ENC), "audio_encoder.")
    ada = mlx_from(ada_t, AudioAdaptor, AdaptorArgs.from_dict(REAL_ADA), "audio_adaptor.")
    t = 84
    x = features(84, 1, t)
    ref = run_torch_encoder(enc_t, x, [t])
    ref_a, _ = run_torch_adaptor(ada_t, ref, [t])
    del enc_t, ada_t
    out = enc(mx.array(x))
    out_a, lens = ada(out)
    assert out_a.shape == (1, t, 1024) and lens.tolist() == [t]
    assert rel_err(out, ref) < TOL
    assert rel_err(mx.array(numpy_encoder.encode(enc, x[0])), ref[0]) < TOL  # the numpy path
    assert rel_err(out_a, ref_a) < TOL


# --- config, sanitize, token count ---------------------------------------------------------------------------------


def test_args_from_upstream_config():
    conf = {
        "output_size": 512, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50, "tp_blocks": 20,
        "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1, "input_layer": "pe",
        "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True, "kernel_size": 11, "sanm_shfit": 0,
        "selfattention_layer_type": "sanm", "freeze": True,
    }  # fmt: skip
    assert EncoderArgs.from_dict(conf) == EncoderArgs()
    ada = {"downsample_rate": 1, "use_low_frame_rate": True, "ffn_dim": 2048, "llm_dim": 1024, "encoder_dim": 512,
           "n_layer": 2, "freeze": False}  # fmt: skip
    assert AdaptorArgs.from_dict(ada) == AdaptorArgs()


def test_sanitize_converts_once_and_selects_its_keys(tiny):
    enc_t, ada_t, enc, ada = tiny
    ckpt = {
        **checkpoint_weights(enc_t, "audio_encoder."),
        **checkpoint_weights(ada_t, "audio_adaptor."),
        "llm.model.embed_tokens.weight": np.zeros((4, 4), np.float32),
        "ctc_decoder.linear.weight": np.zeros((4, 4), np.float32),
    }
    once = enc.sanitize(ckpt)
    assert once["encoders.0.self_attn.fsmn_block.weight"].shape == (16, 11, 1)
    assert set(once) == {k for k, _ in _flat(enc)}
    twice = enc.sanitize(once)  # already converted (as mlx-community's weights): unchanged
    assert all(np.array_equal(twice[k], once[k]) for k in once)
    a_once = ada.sanitize(ckpt)
    assert set(a_once) == {k for k, _ in _flat(ada)} and set(ada.sanitize(a_once)) == set(a_once)
    assert "blocks.0.feed_forward.w_1.weight" in a_once  # (llm_dim // 4, llm_dim), whatever ffn_dim says
    assert a_once["blocks.0.feed_forward.w_1.weight"].shape == (8, 32)


def test_fake_token_len():
    for t in range(1, 400):
        o = 1 + (t - 1) // 2
        o = 1 + (o - 1) // 2
        assert fake_token_len(t) == (o - 1) // 2 + 1
    assert fake_token_len(167) == 21  # 10 s of audio: 998 fbank frames → 167 LFR frames → 21 tokens
    assert [fake_token_len(t) for t in (1, 2, 8, 9, 84)] == [1, 1, 1, 2, 11]


def test_numpy_encoder_equals_the_mlx_encoder():
    """numpy_encoder.encode (one unpadded segment, numpy) against SenseVoiceEncoderSmall (MLX) on random weights."""
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten, tree_map

    from dora_funasr_nano.model_core.fun_asr_nano.backends import numpy_encoder
    from dora_funasr_nano.model_core.fun_asr_nano.encoder import EncoderArgs, SenseVoiceEncoderSmall

    encoder = SenseVoiceEncoderSmall(EncoderArgs(input_size=24, output_size=16, attention_heads=2, linear_units=32,
                                                 num_blocks=3, tp_blocks=2, kernel_size=11))  # fmt: skip
    rng = np.random.default_rng(0)
    encoder.update(tree_map(lambda p: mx.array(rng.standard_normal(p.shape).astype(np.float32) * 0.3),
                            encoder.parameters()))  # fmt: skip
    mx.eval(encoder.parameters())
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(encoder.parameters()))
    for t in (1, 7, 40):
        feats = rng.standard_normal((t, 24)).astype(np.float32)
        want = np.asarray(encoder(mx.array(feats)[None])[0])
        got = numpy_encoder.encode(encoder, feats)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert numpy_encoder.supports(encoder)
    encoder.set_dtype(mx.bfloat16)  # the low-memory option: each tensor widened as it is used, the same products
    assert numpy_encoder.supports(encoder)
    want = np.asarray(encoder(mx.array(feats)[None])[0])
    np.testing.assert_allclose(numpy_encoder.encode(encoder, feats), want, rtol=0, atol=1e-5 * np.abs(want).max())
    encoder.set_dtype(mx.float16)  # not a dtype the numpy backend reads: this encoder stays in MLX
    assert not numpy_encoder.supports(encoder)


@pytest.mark.parametrize("downsample_rate", [1, 2])
def test_numpy_adaptor_equals_the_mlx_adaptor(downsample_rate):
    """numpy_encoder.adapt (channels-first numpy) against AudioAdaptor (MLX), fp32 and bf16 weights."""
    from mlx.utils import tree_map

    adaptor = AudioAdaptor(AdaptorArgs(downsample_rate=downsample_rate, encoder_dim=16, llm_dim=32, ffn_dim=24,
                                       n_layer=2, attention_heads=4))  # fmt: skip
    rng = np.random.default_rng(0)
    adaptor.update(tree_map(lambda p: mx.array(rng.standard_normal(p.shape).astype(np.float32) * 0.3),
                            adaptor.parameters()))  # fmt: skip
    for dtype in (mx.float32, mx.bfloat16):
        adaptor.set_dtype(dtype)
        for t in (1, 7, 40):
            x = rng.standard_normal((t, 16)).astype(np.float32)
            want = np.asarray(adaptor(mx.array(x)[None])[0][0].astype(mx.float32))
            got = numpy_encoder.adapt(adaptor, np.ascontiguousarray(x.T))
            assert got.shape == want.shape == (-(-t // downsample_rate), 32)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
