"""`python -m dora_funasr_nano.model_core.tools.evaluation`: the same as `dfn-eval`."""

from .cli import main

main()
