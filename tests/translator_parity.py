"""Run as a script (with the system OpenBLAS preloaded, as the nodes run): the packaged translator in MLX (converted
from the GGUF) against llama.cpp on the same GGUF. Prints one JSON object. Used by tests/test_packaged_translator.py."""

import json
import sys

import numpy as np

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas

SENTENCES = ["你好世界。", "他在北京大学学习中文已经三年了。"]


def main() -> None:
    ensure_fast_blas()
    import mlx.core as mx
    from llama_cpp import Llama

    from dora_funasr_nano.model_core.tools.gguf_convert import convert_packaged_translator
    from dora_funasr_nano.model_core.translation.llama_cpp import LlamaCppTranslator
    from dora_funasr_nano.model_core.translation.local import packaged_translator_gguf
    from dora_funasr_nano.model_core.translation.mlx import MlxTranslator
    from dora_funasr_nano.model_core.translation.prompt import build_messages

    gguf, folder = packaged_translator_gguf(progress=False), convert_packaged_translator(progress=False)
    mlx_tr, cpp_tr = MlxTranslator(str(folder), 48), LlamaCppTranslator(gguf, 48)
    prompt = mlx_tr.tokenizer.apply_chat_template(build_messages(SENTENCES[1]), add_generation_prompt=True)
    text = mlx_tr.tokenizer.decode(prompt)
    llama = Llama(model_path=str(gguf), n_ctx=512, logits_all=True, verbose=False)
    cpp_ids = llama.tokenize(text.encode(), add_bos=False, special=True)
    llama.eval(cpp_ids)
    cpp_logits = np.asarray(llama.scores[len(cpp_ids) - 1], np.float64)
    mlx_logits = np.asarray(mlx_tr.model(mx.array([prompt]))[0, -1], np.float64)
    report = {
        "same_prompt_ids": list(cpp_ids) == list(prompt),
        "prompt_tokens": len(prompt),
        "argmax": [int(mlx_logits.argmax()), int(cpp_logits.argmax())],
        "corr": float(np.corrcoef(mlx_logits, cpp_logits)[0, 1]),
        "max_abs": float(np.abs(mlx_logits - cpp_logits).max()),
        "logit_scale": float(np.abs(cpp_logits).max()),
        "mlx_dtype": str(next(iter(mlx_tr.model.parameters()["model"]["norm"].values())).dtype),
        "translations": [[mlx_tr.translate(s).text, cpp_tr.translate(s).text] for s in SENTENCES],
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
