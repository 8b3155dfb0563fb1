from dataclasses import dataclass

import pytest

from dora_funasr_nano.nodes.audio_source import AudioSourceConfig
from dora_funasr_nano.nodes.config import load_config
from dora_funasr_nano.nodes.vad import VadConfig


@dataclass
class Example:
    """example"""

    name: str = "a"
    count: int = 1
    ratio: float = 0.5
    enabled: bool = False


def test_defaults_env_then_flags():
    assert load_config(Example, [], env={}) == Example()
    cfg = load_config(Example, [], env={"NAME": "b", "COUNT": "3", "RATIO": "0.25", "ENABLED": "yes"})
    assert cfg == Example("b", 3, 0.25, True)
    cfg = load_config(Example, ["--count", "7", "--enabled", "false"], env={"COUNT": "3", "ENABLED": "1"})
    assert (cfg.count, cfg.enabled) == (7, False)


@pytest.mark.parametrize("env", [{"COUNT": "three"}, {"ENABLED": "maybe"}, {"RATIO": "x"}])
def test_bad_values_name_the_variable(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        load_config(Example, [], env=env)


def test_node_configs_validate():
    with pytest.raises(ValueError, match="SOURCE_MODE"):
        load_config(AudioSourceConfig, [], env={"SOURCE_MODE": "camera"})
    with pytest.raises(ValueError, match="max_segment_s"):
        load_config(VadConfig, [], env={"MAX_SEGMENT_S": "45"})
    assert load_config(AudioSourceConfig, [], env={}).session_id.startswith("file-")
