"""The node configuration loader (one DFN_<NODE>_ namespace per node) and the docs that must list it exactly."""

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest
import yaml
from dfn_testing import DATAFLOWS, REPO

from dora_funasr_nano.model_core.common.settings import INTERNAL, SETTINGS
from dora_funasr_nano.nodes.audio_source import AudioSourceConfig
from dora_funasr_nano.nodes.config import NODES, load_config, node_configs, old_names, settings
from dora_funasr_nano.nodes.contract import Key, Port
from dora_funasr_nano.nodes.funasr import FunAsrConfig
from dora_funasr_nano.nodes.vad import VadConfig
from dora_funasr_nano.nodes.whisper import WhisperConfig

CONFIGS = node_configs()


@dataclass
class Example:
    """example"""

    PREFIX: ClassVar[str] = "DFN_EXAMPLE_"
    RENAMED: ClassVar[dict[str, str]] = {"name": "old_name"}

    name: str = "a"
    count: int = 1
    ratio: float = 0.5
    enabled: bool = False


def test_defaults_env_then_flags():
    assert load_config(Example, [], env={}) == Example()
    env = {"DFN_EXAMPLE_NAME": "b", "DFN_EXAMPLE_COUNT": "3", "DFN_EXAMPLE_RATIO": "0.25", "DFN_EXAMPLE_ENABLED": "yes"}
    assert load_config(Example, [], env=env) == Example("b", 3, 0.25, True)
    cfg = load_config(
        Example, ["--count", "7", "--enabled", "false"], env={"DFN_EXAMPLE_COUNT": "3", "DFN_EXAMPLE_ENABLED": "1"}
    )
    assert (cfg.count, cfg.enabled) == (7, False)


@pytest.mark.parametrize(
    "env", [{"DFN_EXAMPLE_COUNT": "three"}, {"DFN_EXAMPLE_ENABLED": "maybe"}, {"DFN_EXAMPLE_RATIO": "x"}]
)
def test_bad_values_name_the_variable(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        load_config(Example, [], env=env)


def test_node_configs_validate():
    with pytest.raises(ValueError, match="DFN_SOURCE_MODE"):
        load_config(AudioSourceConfig, [], env={"DFN_SOURCE_MODE": "camera"})
    with pytest.raises(ValueError, match="max_segment_s"):
        load_config(VadConfig, [], env={"DFN_VAD_MAX_SEGMENT_S": "45"})
    assert load_config(AudioSourceConfig, [], env={}).session_id.startswith("file-")


def test_every_node_reads_only_its_own_namespace():
    env = {"DFN_FUNASR_MAX_SEGMENT_S": "20", "DFN_VAD_MAX_SEGMENT_S": "10", "DFN_WHISPER_TEMPERATURE": "0,0.2"}
    assert load_config(FunAsrConfig, [], env=env).max_segment_s == 20
    assert load_config(VadConfig, [], env=env).max_segment_s == 10
    assert load_config(WhisperConfig, [], env=env).temperature_ladder == (0.0, 0.2)
    assert load_config(FunAsrConfig, [], env=env).temperature == 0.0  # the whisper ladder is not funasr's


def test_unknown_name_under_the_nodes_prefix_is_an_error_with_the_closest_names():
    with pytest.raises(ValueError, match="DFN_FUNASR_MODLE.*did you mean DFN_FUNASR_MODEL"):
        load_config(FunAsrConfig, [], env={"DFN_FUNASR_MODLE": "x"})
    load_config(VadConfig, [], env={"DFN_FUNASR_MODLE": "x"})  # another node's business


@pytest.mark.parametrize("prefix", sorted(CONFIGS))
def test_a_dfn_name_that_no_node_reads_is_the_same_error_in_every_node(prefix):
    with pytest.raises(ValueError, match="DFN_FUNSAR_MODEL is not read by any.*did you mean DFN_FUNASR_MODEL"):
        load_config(CONFIGS[prefix], [], env={"DFN_FUNSAR_MODEL": "x"})
    # model_core's own settings, internal names and the variable holding the LLM key are not typos
    allowed = {**dict.fromkeys([*SETTINGS, *INTERNAL], "1"), "DFN_LLM_API_KEY_ENV": "DFN_MY_KEY", "DFN_MY_KEY": "sk"}
    allowed["DFN_BACKEND"], allowed["DFN_BLAS"] = "auto", "off"
    load_config(CONFIGS[prefix], [], env=allowed)


def test_the_prefixes_are_the_configs_own():
    assert {prefix: cls.PREFIX for prefix, cls in CONFIGS.items()} == {prefix: prefix for prefix in NODES}


ALIASES = [(cls, new, old) for cls in CONFIGS.values() for new, old in getattr(cls, "RENAMED", {}).items()]
# a valid value other than the default, for the settings that only take a few
CHOICES = {"mode": "mic", "task": "transcribe_en", "engine": "mlx", "temperature": "0,0.2"}


@pytest.mark.parametrize(("cls", "field", "old"), ALIASES, ids=[f"{c.__name__}.{n}" for c, n, _ in ALIASES])
def test_renamed_settings_keep_their_old_flag(cls, field, old):
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[field]
    raw = {"int": "3", "float": "2.5"}.get(kind, CHOICES.get(field, "some/where"))
    if (cls.__name__, field) in {("WhisperConfig", "task"), ("TtsConfig", "engine")}:
        raw = {"task": "transcribe", "engine": "piper"}[field]
    want = {"int": int, "float": float}.get(kind, str)(raw)
    assert getattr(load_config(cls, ["--" + old.replace("_", "-"), raw], env={}), field) == want
    assert getattr(load_config(cls, ["--" + field.replace("_", "-"), raw], env={}), field) == want


def test_an_old_name_set_alone_gets_a_warning_not_an_error(capsys):
    cfg = load_config(AudioSourceConfig, [], env={"AUDIO_FILE": "talk.wav", "PLAY": "true", "REALTIME": "false"})
    assert cfg.file == "" and cfg.realtime is True  # not read
    err = capsys.readouterr().err
    assert "AUDIO_FILE is no longer read; use DFN_SOURCE_FILE\n" in err
    assert "REALTIME is no longer read; use DFN_SOURCE_REALTIME\n" in err and "PLAY" not in err
    load_config(AudioSourceConfig, [], env={"AUDIO_FILE": "a.wav", "DFN_SOURCE_FILE": "b.wav"})
    load_config(FunAsrConfig, [], env={"BACKEND": "mlx"})  # a new setting: BACKEND was never read
    assert capsys.readouterr().err == ""
    assert old_names(WhisperConfig)["temperature"] == "TEMPERATURES" and "backend" not in old_names(FunAsrConfig)


# --- the docs and graphs name exactly the real settings --------------------------------------------------------


def _default(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _readme_node_tables() -> dict[str, dict[str, str]]:
    """{node module: {env name: default cell}} from the README's "Nodes" subsections."""
    tables: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n### ", _readme_section("Nodes"))[1:]:
        title = re.match(r"`dfn-([a-z-]+)`", block)
        if title is None:
            continue
        rows = tables.setdefault(title.group(1).replace("-", "_"), {})
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("| `DFN_"):
                continue
            names, defaults = cells[0].split(" / "), cells[1].split(" / ") if cells[1] else [""]
            defaults = defaults * len(names) if defaults == [""] else defaults
            assert len(names) == len(defaults), line
            for name, default in zip(names, defaults, strict=True):
                assert name.strip("`") not in rows, f"{name} listed twice"
                rows[name.strip("`")] = default
    return tables


def test_readme_node_tables_list_exactly_each_configs_settings_and_defaults():
    """Each row: the env name(s) and the default in backticks; an empty default (not set, or computed like the
    session id) is an empty cell, and the meaning column says what it means."""
    tables = _readme_node_tables()
    for prefix, cls in CONFIGS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        want = {var: f"`{_default(defaults[f])}`" if defaults[f] != "" else "" for var, f in settings(cls).items()}
        assert tables.get(NODES[prefix].split(":")[0]) == want, prefix


def test_readme_contract_table_documents_every_key_and_port():
    section = _readme_section("Nodes")
    keys = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
    declared = {v for k, v in vars(Key).items() if k.isupper()}
    assert keys >= declared, sorted(declared - keys)
    ports = {v for k, v in vars(Port).items() if k.isupper()}
    assert all(f"`{port}`" in section for port in ports)


def test_dataflows_makefile_and_readme_name_only_real_settings():
    real = {*SETTINGS, *(var for cls in CONFIGS.values() for var in settings(cls))}
    readme = "".join(_readme_section(s) for s in ("The two commands", "Running graphs yourself", "Nodes"))
    texts = {p.name: p.read_text() for p in [*DATAFLOWS.glob("*.yml"), REPO / "Makefile", *REPO.glob("examples/*.py")]}
    for name, text in {**texts, "README.md": readme}.items():
        named = set(re.findall(r"\bDFN_[A-Z0-9_]*[A-Z0-9]\b", text)) - {"DFN_FUNSAR_MODEL"}  # the typo example
        assert named <= real, (name, sorted(named - real))
    scripts = {f"dfn-{NODES[p].split(':')[0].replace('_', '-')}": cls for p, cls in CONFIGS.items()}
    for path in DATAFLOWS.glob("*.yml"):
        for node in yaml.safe_load(path.read_text())["nodes"]:
            env = node.get("env") or {}
            assert set(env) <= set(settings(scripts[node["path"]])), (path.name, node["id"], sorted(env))
