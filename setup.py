"""Package discovery for the two source folders, installed as dora_funasr_nano.model_core and
dora_funasr_nano.nodes (everything else is in pyproject.toml)."""

from setuptools import find_packages, setup

# model_core/fun_asr_nano/backends -> dora_funasr_nano.model_core.fun_asr_nano.backends, and so on
SOURCES = find_packages(include=["model_core*", "nodes*"])
PACKAGES = {f"dora_funasr_nano.{name}": name.replace(".", "/") for name in SOURCES}

setup(packages=sorted(PACKAGES), package_dir=PACKAGES)
