"""`dfn-llama-server`: the packaged translator (or any GGUF) as an OpenAI-compatible server, in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..translation.llama_cpp import INSTALL_HINT, default_threads, llama_cpp_available, server_command
from ..translation.local import packaged_translator_gguf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser("dfn-llama-server", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--model", default="packaged", help="packaged (default) or a .gguf file")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--n-threads", type=int, default=default_threads())
    opts = parser.parse_args(argv)
    if not llama_cpp_available():
        sys.exit(f"error: llama.cpp is not installed; {INSTALL_HINT}")
    model = packaged_translator_gguf() if opts.model == "packaged" else Path(opts.model)
    command = server_command(model, opts.host, opts.port, opts.n_threads, 2048, alias="qwen2.5-coder-0.5b-instruct")
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
