"""Report parameters: profiles, then a YAML file, then ``--param key=value`` (last wins)."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path

import yaml

from workbench.data import DEFAULT_LABEL_COLUMN, DEFAULT_TEXT_COLUMN
from workbench.errors import BadInputError
from workbench.labels import DEFAULT_TEST_SIZE, DEFAULT_VALIDATION_SIZE
from workbench.models import DEFAULT_BASE_MODEL
from workbench.paths import DEFAULT_DATA, NOTEBOOK_DIR
from workbench.routing import OPTION_KEYS
from workbench.scope import model_read_options
from workbench.training.folder import replay_parameters
from workbench.training.recipes import RECIPES

# Profiles: named parameter sets.
# "standard" (the default) trains the default recipe within a fine-tuning time budget, so a
# scheduled report finishes on time on a laptop CPU as well as on a server;
# "quick" is the CI smoke setting: its pages carry a "smoke-test model" banner;
# "reference" is the reference model card exactly (10 epochs of 4,000 pairs); "full" is its old name.
PROFILES: dict[str, dict[str, object]] = {
    "standard": {
        "recipe": "fusion",
        "time_budget": "20m",
        "umap_max_points": 10000,
        "smoke": False,
    },
    "quick": {
        "recipe": "seed",
        "num_pairs": 256,
        "epochs": 1,
        "batch_size": 32,
        "learning_rate": 5e-5,
        "max_seq_length": 64,
        "umap_max_points": 3000,
        "inference": "torch",
        "smoke": True,
    },
    "reference": {
        "recipe": "seed",
        "num_pairs": 4000,
        "epochs": 10,
        "batch_size": 32,
        "learning_rate": 5e-5,
        "max_seq_length": 256,
        "umap_max_points": 20000,
        "smoke": False,
    },
}
PROFILE_ALIASES = {"full": "reference"}
DEFAULT_PROFILE = "standard"
EVALUATE_CHOICES = ("split", "all")


def build_parameters(
    config_file: str | Path | None = None,
    profile: str = DEFAULT_PROFILE,
    overrides: dict[str, object] | None = None,
) -> dict[str, object]:
    """Profile defaults, then the YAML file, then command-line overrides (last wins)."""
    profile = PROFILE_ALIASES.get(profile, profile)
    if profile not in PROFILES:
        raise BadInputError(
            f"unknown profile '{profile}'; choose one of: {', '.join([*PROFILES, *PROFILE_ALIASES])}"
        )
    params: dict[str, object] = {
        "data_path": str(DEFAULT_DATA),
        "text_column": DEFAULT_TEXT_COLUMN,
        "label_column": DEFAULT_LABEL_COLUMN,
        "seed": 42,
        "test_size": DEFAULT_TEST_SIZE,
        "validation_size": DEFAULT_VALIDATION_SIZE,
        "base_model": DEFAULT_BASE_MODEL,
        "reference_run": "",
        "model_dir": "",  # a trained folder to evaluate instead of training one
        "evaluate": "split",  # split: the test split; all: every row (monitoring a model)
        "min_class_size": None,  # rare categories: below this many tickets (None: what the split needs)
        "rare": "merge",  # merge into 'other (rare)', drop (counted) or error
        "label_descriptions": "",  # YAML file of code: description for coded categories
        "replay": "",  # a budgeted training folder or run: train exactly what it trained
        "corrections": "",  # CSV of review decisions (workbench.corrections), applied after loading
        "corrections_scope": "train",  # train: training labels only; all: every split's
        **PROFILES[profile],
        "profile": profile,
    }
    given = dict(read_config(config_file)) if config_file else {}
    given.update(overrides or {})
    check_known(given, params, config_file)
    params.update(given)
    if params["model_dir"]:
        # A given model reads the file as its training data was read (text columns joined the
        # same way, its label column), as `predict` does, unless the run names them itself.

        for key, value in model_read_options(str(params["model_dir"])).items():
            if key not in given:
                params[key] = value
    if params.get("replay"):
        # The recorded run wins over the profile: its recipe, parameters, seed and split.
        params.update(replay_parameters(str(params["replay"])))
    if params.get("corrections_scope") == "all" and not params.get("corrections"):
        raise BadInputError("--corrections-scope all applies corrections: add --corrections FILE")
    if params["evaluate"] not in EVALUATE_CHOICES:
        raise BadInputError(
            f"--evaluate {params['evaluate']}: choose one of {', '.join(EVALUATE_CHOICES)}"
        )
    if params["evaluate"] == "all" and not params["model_dir"]:
        raise BadInputError(
            "--evaluate all scores every row with a model trained earlier: add --model DIR"
        )
    return params


def read_yaml(path: str | Path, what: str = "config file") -> object:
    """Parsed YAML with one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise BadInputError(
            f"{path}: not valid YAML: {' '.join(str(error).split())[:160]}"
        ) from error


def read_config(path: str | Path) -> dict[str, object]:
    """A flat YAML mapping of notebook parameters."""
    loaded = read_yaml(path)
    if not isinstance(loaded, dict):
        raise BadInputError(
            f"{path}: expected a mapping of parameter: value, got {type(loaded).__name__}"
        )
    return {str(k): v for k, v in loaded.items()}


def parse_assignments(items: list[str]) -> dict[str, object]:
    """``key=value`` pairs from the command line; values are read as YAML (numbers, lists, true)."""
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--param '{item}' is not key=value (e.g. --param epochs=2)")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed[key.strip()] = value
    return parsed


# Keys the split and the pipeline read that no profile, recipe or notebook cell names.
PIPELINE_KEYS = {"split_seed", "training_params"}


@cache
def notebook_parameters() -> frozenset[str]:
    """The names the notebooks' ``parameters`` cells assign (papermill injects the rest)."""
    names: set[str] = set()
    for notebook in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                names |= set(re.findall(r"^(\w+) *=", "".join(cell["source"]), re.M))
    return frozenset(names)


def known_parameters(defaults: dict[str, object] | None = None) -> set[str]:
    """Every key ``--param`` (or the config file) may set: report and notebook parameters,
    every recipe's knobs, the operating point's options and the split's."""
    known = {key for params in RECIPES.values() for key in params}
    known |= {key for profile in PROFILES.values() for key in profile}
    known |= set(defaults or build_parameters()) | set(OPTION_KEYS) | PIPELINE_KEYS
    return known | notebook_parameters()


def check_known(given: dict[str, object], defaults: dict[str, object], source) -> None:
    """A misspelt key is refused before any notebook runs (it would otherwise be ignored)."""
    known = known_parameters(defaults)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"--param or {source}" if source else "--param"
            raise BadInputError(
                f"{where}: unknown parameter {key!r}{hint} (see docs/getting-started.md)"
            )
