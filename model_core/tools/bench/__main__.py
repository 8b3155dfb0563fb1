"""`python -m dora_funasr_nano.model_core.tools.bench`: the command, also how runner.py starts each child."""

from .cli import main

main()
