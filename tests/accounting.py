"""The graphs' invariant, checked on what the probe recorded (one final or one typed error per segment, no hole,
no reported loss). The logic lives with the benchmark, which checks it on every run; the tests import it from here."""

from dora_funasr_nano.model_core.tools.pipeline_bench.accounting import (  # noqa: F401
    LOSS_CODES,
    Accounting,
    AccountingError,
    account,
    read_records,
)
