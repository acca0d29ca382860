"""Install surfaces: conda environment, console script, CPU PyTorch by default, offline model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from workbench.models import DEFAULT_BASE_MODEL, resolve_model

PROJECT = Path(__file__).resolve().parent.parent


def test_environment_yml_installs_the_package_with_pip():
    env = yaml.safe_load((PROJECT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip_section


def test_console_script_and_cpu_torch_default():
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["workbench"] == "workbench.cli:main"
    makefile = (PROJECT / "Makefile").read_text()
    assert re.search(r"^TORCH_SPEC\s*\?=\s*torch==2\.13\.0$", makefile, re.MULTILINE)
    assert re.search(r"^TORCH_INDEX\s*\?=\s*$", makefile, re.MULTILINE)  # overridable for GPU users


def test_default_model_resolves_to_packaged_weights():
    import hashlib

    folder = Path(resolve_model(DEFAULT_BASE_MODEL))
    assert (folder / "modules.json").exists()
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest.startswith("53aa5117") and digest.endswith("d9db")
    assert resolve_model("some-org/other-model") == "some-org/other-model"
    assert resolve_model("/local/path") == "/local/path"


def test_unknown_model_paths_fail_with_one_line(tmp_path):
    import pytest

    from workbench.errors import BadInputError
    from workbench.models import load_model

    with pytest.raises(
        BadInputError, match="does not exist; check the --model path or the base_model parameter"
    ):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="is not a sentence-transformers folder"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(
        BadInputError, match="cannot load model 'nobody/such-model-offline'"
    ) as error:
        load_model("nobody/such-model-offline")
    assert "\n" not in str(error.value)


def test_cpu_flags_name_the_speed_units(tmp_path):
    """Every run records which bf16/AVX units its timings came from."""
    from workbench.runinfo import cpu_flags, environment

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\nflags : avx2\n")
    assert cpu_flags(cpuinfo) == "avx2 avx512_bf16"
    assert cpu_flags(tmp_path / "missing") == ""
    assert set(environment()["cpu_flags"].split()) <= {"avx2", "avx512_bf16", "amx_tile"}
