"""Convert a Qwen2 GGUF file (llama.cpp layout) into an mlx-lm model folder.

Used for the packaged offline translator (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, `assets.QWEN_CODER_GGUF`) so that the
same weights run in MLX (in-process, any platform) and in llama.cpp. Tensors are dequantized with the `gguf` package
(K-quants and legacy quants alike) and renamed to the Hugging Face names mlx-lm expects; the tokenizer and chat
template embedded in the GGUF become `tokenizer.json` / `tokenizer_config.json` through transformers' GGUF reader.
Conversion is separate from runtime (as in mlx-examples' whisper): run it once, load the folder with `mlx_lm.load`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..common.assets import QWEN_CODER_GGUF
from ..common.errors import ModelNotLoaded
from ..translation.local import packaged_translator_converted, packaged_translator_dir, packaged_translator_gguf

if TYPE_CHECKING:
    from gguf import GGUFReader

# llama.cpp tensor names (per block) -> Hugging Face Qwen2 names. Qwen2 keeps the HF q/k row order in GGUF
# (llama.cpp applies NeoX-style RoPE for this architecture), so no un-permutation is needed.
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")
_DTYPES = {"float32": np.float32, "float16": np.float16}


def hf_name(gguf_name: str) -> str:
    """`blk.3.attn_q.bias` -> `model.layers.3.self_attn.q_proj.bias`."""
    if m := _BLOCK.match(gguf_name):
        layer, part, kind = m.groups()
        if part not in _BLOCK_NAMES:
            raise ValueError(f"unknown GGUF tensor {gguf_name!r}")
        return f"model.layers.{layer}.{_BLOCK_NAMES[part]}.{kind}"
    stem, _, kind = gguf_name.rpartition(".")
    if stem not in _TOP_NAMES:
        raise ValueError(f"unknown GGUF tensor {gguf_name!r}")
    return f"{_TOP_NAMES[stem]}.{kind}"


def _field(reader: GGUFReader, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"GGUF metadata has no {key!r}")
    return field.contents()


def qwen2_config(reader: GGUFReader) -> dict[str, Any]:
    """The mlx-lm `config.json` for a `general.architecture == qwen2` GGUF."""
    arch = _field(reader, "general.architecture")
    if arch != "qwen2":
        raise ValueError(f"only qwen2 GGUF files are supported, this one is {arch!r}")
    names = {t.name for t in reader.tensors}
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    eos = [int(_field(reader, "tokenizer.ggml.eos_token_id"))]
    if "tokenizer.ggml.padding_token_id" in reader.fields:  # <|endoftext|> also ends a turn for Qwen2.5
        eos.append(int(_field(reader, "tokenizer.ggml.padding_token_id")))
    return {
        "model_type": "qwen2",
        "hidden_size": int(_field(reader, "qwen2.embedding_length")),
        "num_hidden_layers": int(_field(reader, "qwen2.block_count")),
        "intermediate_size": int(_field(reader, "qwen2.feed_forward_length")),
        "num_attention_heads": int(_field(reader, "qwen2.attention.head_count")),
        "num_key_value_heads": int(_field(reader, "qwen2.attention.head_count_kv")),
        "rms_norm_eps": float(_field(reader, "qwen2.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, "qwen2.rope.freq_base")),
        "max_position_embeddings": int(_field(reader, "qwen2.context_length")),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in names,
        "eos_token_id": eos,
    }


def dequantized_weights(reader: GGUFReader, dtype: str = "float16", progress: bool = False) -> dict[str, np.ndarray]:
    """All tensors, dequantized (numpy, HF names, HF [out, in] layout)."""
    from gguf.quants import dequantize
    from tqdm import tqdm

    out = {}
    for tensor in tqdm(reader.tensors, desc="dequantizing", unit="tensor", disable=not progress, file=sys.stderr):
        values = dequantize(tensor.data, tensor.tensor_type)
        out[hf_name(tensor.name)] = np.ascontiguousarray(values, dtype=_DTYPES[dtype])
    return out


def save_tokenizer(gguf_path: Path, out_dir: Path) -> None:
    """tokenizer.json, tokenizer_config.json and the chat template, from the GGUF's own tokenizer metadata."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.save_pretrained(str(out_dir))


def convert_gguf(
    gguf_path: str | Path, out_dir: str | Path, dtype: str = "float16", tokenizer: bool = True, progress: bool = False
) -> Path:
    """Write an mlx-lm model folder (config.json, model.safetensors, tokenizer files) from a qwen2 GGUF.

    float16 keeps the dequantized values to ~1e-3 relative (well under the Q4/Q5 quantization error itself) at half
    the size of float32; the translator casts to float32 on Linux CPU, where only fp32 matmuls are fast in MLX.
    """
    import mlx.core as mx
    from gguf import GGUFReader

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    reader = GGUFReader(str(gguf_path))
    config = qwen2_config(reader)
    tmp = out_dir.with_name(out_dir.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = dequantized_weights(reader, dtype, progress)
    mx.save_safetensors(str(tmp / "model.safetensors"), {k: mx.array(v) for k, v in weights.items()},
                        metadata={"format": "mlx"})  # fmt: skip
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if tokenizer:
        save_tokenizer(gguf_path, tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def convert_packaged_translator(progress: bool = True) -> Path:
    """The named conversion step for MLX: the packaged GGUF -> its mlx-lm folder (translation.local), once; cached
    by the GGUF's sha256, so a later call returns at once."""
    gguf = packaged_translator_gguf(progress=progress)
    out_dir = packaged_translator_dir()
    if packaged_translator_converted():
        return out_dir
    try:
        convert_gguf(gguf, out_dir, progress=progress)
    except ImportError as exc:
        hint = QWEN_CODER_GGUF.install_hint
        raise ModelNotLoaded(f"converting the packaged translator needs {exc.name}; {hint}") from exc
    (out_dir / ".source-sha256").write_text(QWEN_CODER_GGUF.sha256 + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a qwen2 GGUF file into an mlx-lm model folder.")
    parser.add_argument("gguf", help="the .gguf file")
    parser.add_argument("out_dir", help="the folder to write (replaced)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float16")
    opts = parser.parse_args(argv)
    print(convert_gguf(opts.gguf, opts.out_dir, opts.dtype))


if __name__ == "__main__":
    main()
