"""Faster CPU inference: export the fine-tuned encoder to ONNX / OpenVINO (fp32 and int8), check
each export against PyTorch, and pick the fastest checked one at load time.

Files follow sentence-transformers' backend layout inside the ``model/`` folder
(``onnx/model.onnx``, ``onnx/model_qint8_quantized.onnx``, ``openvino/openvino_model.xml``,
``openvino/openvino_model_qint8_quantized.xml``). Export and inference use ``onnxruntime``,
``onnxruntime.quantization``, ``openvino`` and ``nncf`` directly rather than through
``optimum-onnx`` / ``optimum-intel`` (what ``SentenceTransformer(backend="onnx")`` needs): those
pin ``transformers<4.58`` / ``<5.6``, older than the ``transformers`` this project runs.
Tokenisation, pooling and normalisation stay sentence-transformers' own: only the transformer
forward pass is swapped, so ``model.encode`` works unchanged.

``model/backends.json`` records, per backend, the file, its SHA-256, the cosine error against
PyTorch on reference tickets, argmax agreement (when a scorer is given), speed, and
``checked``. ``auto`` only ever picks a checked backend whose file is unchanged.

Layer: above ``workbench.models`` (PyTorch loading, devices), below the heads and the classifier;
it knows nothing of heads — a caller that wants prediction agreement passes a ``scorer``
(``workbench.classifier.classifier_scorer``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import models
from workbench.errors import BadInputError
from workbench.models import DEFAULT_BASE_MODEL, pick_device, torch_threads
from workbench.runinfo import cpu_flag_set
from workbench.texthash import file_sha256

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
FILES = {
    "onnx": "onnx/model.onnx",
    "onnx-int8": "onnx/model_qint8_quantized.onnx",
    "openvino": "openvino/openvino_model.xml",
    "openvino-int8": "openvino/openvino_model_qint8_quantized.xml",
}
RUNTIME = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime"}
RUNTIME.update({"openvino": "openvino", "openvino-int8": "openvino"})
EXPORTER = {"onnx": "onnx", "onnx-int8": "onnxruntime", "openvino": "openvino"}
EXPORTER["openvino-int8"] = "nncf"
REPORT = "backends.json"
# OpenVINO's static int8 pays only on CPUs with int8 dot-product instructions (VNNI, AMX): on
# AVX2 CPUs without them it ran at 0.79x and 1.16x PyTorch (bench/RESULTS.md, inference
# backends) while its NNCF calibration was the longest export (24-27 s). There it is not
# exported unless asked for by name; ONNX int8 (1.4-2x on the same CPUs) still is.
INT8_UNITS = ("avx512_vnni", "avx_vnni", "amx_int8")
NEEDS_INT8_UNITS = ("openvino-int8",)
# A backend is "checked" when every reference ticket's embedding is this close to PyTorch's
# (1 - cosine) and, with a scorer, the predicted category agrees this often. fp32 exports differ
# only by operator order (~1e-6); int8 rounds weights/activations to 256 levels, which moves a
# unit vector by a few hundredths at worst but rarely changes the nearest category.
MAX_COSINE_ERROR = {"onnx": 1e-4, "openvino": 1e-4, "onnx-int8": 0.05, "openvino-int8": 0.05}
MIN_MEAN_COSINE = {"onnx": 0.9999, "openvino": 0.9999, "onnx-int8": 0.99, "openvino-int8": 0.99}
MIN_AGREEMENT = 0.99
# With the reference tickets' true categories, the check is on quality itself, paired: on the
# same tickets, the backend must agree with PyTorch's predicted category on MIN_AGREEMENT of them
# and the 95 % bootstrap interval of the macro-F1 difference (PyTorch − backend) must stay below
# this many points at its upper end. A point estimate alone flipped between runs near 0.3 points.
MAX_MACRO_F1_DROP = 0.005
BOOTSTRAP_RESAMPLES = 2000
# ``auto`` takes the first checked backend in this order that encodes at least this much faster
# than PyTorch: a fixed order, so two exports of one model never choose differently because the
# timings of two int8 runtimes crossed (their speeds differ by less than their timing noise).
AUTO_ORDER = ("openvino-int8", "onnx-int8", "openvino", "onnx")
MIN_AUTO_SPEEDUP = 1.2


def model_folder(path: str | os.PathLike) -> Path:
    """The sentence-transformers folder: ``path`` itself, or ``path/model`` (a training folder)."""
    path = Path(path)
    return path / "model" if (path / "model" / "modules.json").exists() else path


def runtime_installed(backend: str) -> bool:
    return backend == "torch" or importlib.util.find_spec(RUNTIME[backend]) is not None


def exporter_installed(backend: str) -> bool:
    return runtime_installed(backend) and importlib.util.find_spec(EXPORTER[backend]) is not None


def default_backends(flags: set[str] | None = None) -> dict[str, str | None]:
    """The exports worth making on this CPU (``flags``: its ``/proc/cpuinfo`` flags): each
    backend, with None, or with the one-line reason it is left out."""
    flags = cpu_flag_set() if flags is None else flags
    units = any(flag in flags for flag in INT8_UNITS)
    reason = (
        "not exported: this CPU has no int8 dot-product instructions (VNNI, AMX), on which "
        "OpenVINO int8 ran slower than or about as fast as PyTorch"
    )
    return {b: None if units or b not in NEEDS_INT8_UNITS else reason for b in FILES}


def read_report(folder: str | os.PathLike) -> dict[str, Any]:
    """The export's checks ({} when nothing was exported). A file that cannot be read is one
    warning line: ``auto`` then serves PyTorch, and the user is told why it is slower."""
    path = model_folder(folder) / REPORT
    if not path.exists():
        return {}
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
        return report
    except (OSError, ValueError) as error:
        warn(
            f"{path} is unreadable ({error}): no export counts as checked, torch serves; export again"
        )
        return {}


def warn(message: str) -> None:
    """Exactly one line on stderr."""
    print(f"workbench: warning: {message}", file=sys.stderr, flush=True)


def validate(requested: str | None) -> str:
    """``auto`` or one of BACKENDS; anything else is a one-line parameter error."""
    value = str(requested or "auto").strip().lower()
    if value != "auto" and value not in BACKENDS:
        raise BadInputError(
            f"parameter inference={requested!r} is not a backend; use auto, {', '.join(BACKENDS)}"
        )
    return value


def _unavailable_reason(folder: Path, backend: str, report: dict[str, Any]) -> str | None:
    if not runtime_installed(backend):
        return f"{RUNTIME[backend]} is not installed (pip install -e '.[inference]')"
    file = folder / FILES[backend]
    entry = report.get("backends", {}).get(backend)
    if not file.exists():
        why = f": {entry['reason']}" if (entry or {}).get("reason") else ""
        return (
            f"{file} was not exported{why} (train again, or call "
            f"workbench.backends.export_backends with backends=['{backend}'])"
        )
    if not entry:
        return f"{backend} has no accuracy check in {folder / REPORT}"
    if not entry.get("checked"):
        return f"{backend} failed its accuracy check at export ({entry.get('reason', 'see backends.json')})"
    if entry.get("sha256") != _export_sha(file):
        return f"{file} changed since its accuracy check; export again"
    if report.get("torch_sha256") and report["torch_sha256"] != _torch_weights_sha(folder):
        return f"the PyTorch weights in {folder} changed since the export; export again"
    return None


def choose_backend(
    model_dir: str | os.PathLike, requested: str = "auto", device: str | None = None
) -> str:
    """The backend to encode with: the fastest checked one for ``auto``, else the requested one.

    A requested backend that is not installed, not exported, or failed its check gives
    ``torch`` and one warning line. ``auto`` on a GPU stays with PyTorch (the exports are CPU ones).
    """
    value = validate(requested)
    if value == "torch":
        return "torch"
    folder = model_folder(model_dir)
    report = read_report(folder)
    if value == "auto":
        if pick_device(device) != "cpu":
            return "torch"
        entries = report.get("backends", {})
        torch_speed = entries.get("torch", {}).get("tickets_per_s", 0.0)
        for name in AUTO_ORDER:
            speed = entries.get(name, {}).get("tickets_per_s", 0.0)
            if speed >= MIN_AUTO_SPEEDUP * torch_speed and not _unavailable_reason(
                folder, name, report
            ):
                return name
        return "torch"
    reason = _unavailable_reason(folder, value, report)
    if reason:
        warn(f"inference={value} unavailable: {reason}; using torch")
        return "torch"
    return value


# --------------------------------------------------------------------------- runtime models


class _Runner:
    """One exported encoder: ``run(features) -> last_hidden_state`` as a numpy array."""

    def __init__(self, backend: str, file: Path, threads: int):
        self.backend = backend
        if backend.startswith("onnx"):
            import onnxruntime as ort  # optional: [inference] extra

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self.session = ort.InferenceSession(
                str(file), options, providers=["CPUExecutionProvider"]
            )
            self.inputs = [i.name for i in self.session.get_inputs()]
        else:
            import openvino as ov  # optional: [inference] extra

            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            if backend == "openvino":
                # OpenVINO runs fp32 models in bf16 on CPUs with bf16 units unless told not to.
                config["INFERENCE_PRECISION_HINT"] = "f32"
            self.compiled = ov.Core().compile_model(str(file), "CPU", config)
            self.inputs = [port.get_any_name() for port in self.compiled.inputs]

    def run(self, features: dict[str, Any]) -> np.ndarray:
        feeds = {}
        for name in self.inputs:
            value = features.get(name)
            if value is None and name == "token_type_ids":
                value = np.zeros_like(np.asarray(features["input_ids"]))
            feeds[name] = np.asarray(value.cpu() if hasattr(value, "cpu") else value, np.int64)
        if self.backend.startswith("onnx"):
            return self.session.run(None, feeds)[0]
        return next(iter(self.compiled(feeds).values()))


def _runtime_module(runner: _Runner, config):
    """A torch module standing in for the Hugging Face model inside sentence-transformers."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class RuntimeEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = config
            self.runner = runner
            # a buffer so that ``SentenceTransformer.device`` still has a tensor to look at
            self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            hidden = runner.run(
                {
                    "input_ids": input_ids,
                    "attention_mask": attention_mask,
                    "token_type_ids": token_type_ids,
                }
            )
            return BaseModelOutput(last_hidden_state=torch.from_numpy(np.ascontiguousarray(hidden)))

    return RuntimeEncoder()


def attach_backend(model: SentenceTransformer, folder: str | os.PathLike, backend: str) -> None:
    """Swap the PyTorch transformer of a loaded (CPU) model for the exported ``backend``."""
    file = model_folder(folder) / FILES[backend]
    transformer = model[0]
    runner = _Runner(backend, file, threads=max(1, torch_threads()))
    transformer.model = _runtime_module(runner, transformer.model.config)
    model._workbench_backend = backend
    model._workbench_backend_hash = _export_sha(file)


def _export_sha(file: Path) -> str:
    """Hash of an exported model, including OpenVINO's weights file next to the ``.xml``."""
    return file_sha256(file, file.with_suffix(".bin"), missing_ok=True)


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_BASE_MODEL,
    device: str | None = None,
    max_seq_length: int | None = None,
    backend: str = "torch",
    check: bool = True,
) -> SentenceTransformer:
    """:func:`workbench.models.load_model` with the inference engine of an exported folder.

    ``backend`` (``torch``, ``auto``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``):
    ``auto`` takes the fastest export that passed its accuracy check; an unavailable one falls
    back to PyTorch with one warning line. ``check=False`` skips that choice (the export check).
    """
    local = Path(models.check_model_path(name_or_path)).expanduser()
    chosen = validate(backend)
    if chosen != "torch" and local.exists():
        chosen = choose_backend(local, chosen, device) if check else chosen
    elif chosen != "torch":
        chosen = "torch"  # a hub id has no exports
    model = models.load_model(
        name_or_path, device="cpu" if chosen != "torch" else device, max_seq_length=max_seq_length
    )
    if chosen != "torch":
        attach_backend(model, local, chosen)
    return model


def backend_of(model: SentenceTransformer) -> str:
    """Which backend a loaded model encodes with (for run records and reports)."""
    return getattr(model, "_workbench_backend", "torch")


# --------------------------------------------------------------------------- export


def _torch_weights_sha(folder: Path) -> str:
    names = ("model.safetensors", "pytorch_model.bin")
    return file_sha256(*(folder / name for name in names), missing_ok=True)


def _export_onnx(model: SentenceTransformer, target: Path) -> None:
    """PyTorch → ONNX (TorchScript exporter: no onnxscript needed), dynamic batch and length."""
    import torch

    hf_model = model[0].auto_model.eval()
    # Two tickets of different lengths, so the padding mask path is the one traced.
    sample = model.preprocess(["printer offline again", "vpn disconnects every few minutes now"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = hf_model

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper(),
            tuple(sample[n] for n in names),
            str(target),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _export_onnx_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the MatMuls (what ``export_dynamic_quantized_onnx_model`` does)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # optional: [inference] extra

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,  # per-channel weight scales: mean cosine 0.962 -> 0.994 on MiniLM
        op_types_to_quantize=["MatMul"],
    )


def _export_openvino(source: Path, target: Path) -> None:
    import openvino as ov  # optional: [inference] extra

    target.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(source)), str(target), compress_to_fp16=False)


def _export_openvino_int8(
    model: SentenceTransformer, source: Path, target: Path, calibration: list[str]
) -> None:
    """Static int8 (NNCF post-training quantisation, as ``export_static_quantized_openvino_model``)
    calibrated on our own tickets instead of a dataset downloaded from the Hub."""
    import nncf  # optional: [inference] extra
    import openvino as ov  # optional: [inference] extra

    items = []
    for text in calibration:
        features = model.preprocess([text])
        items.append(
            {
                k: features[k].numpy().astype(np.int64)
                for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in features
            }
        )
    quantized = nncf.quantize(
        ov.Core().read_model(str(source)),
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )
    ov.save_model(quantized, str(target), compress_to_fp16=False)


def _timed_encode(
    model: SentenceTransformer, texts: list[str], batch_size: int
) -> tuple[np.ndarray, float]:
    model.encode(texts[: min(8, len(texts))], batch_size=batch_size, show_progress_bar=False)
    start = time.perf_counter()
    vectors = model.encode(
        texts, batch_size=batch_size, show_progress_bar=False, normalize_embeddings=True
    )
    elapsed = time.perf_counter() - start
    return np.asarray(vectors, np.float32), len(texts) / max(elapsed, 1e-9)


def compare(reference: np.ndarray, vectors: np.ndarray) -> dict[str, float]:
    """1 - cosine per ticket (vectors are unit length): max and mean."""
    cosine = np.sum(reference * vectors, axis=1)
    error = 1.0 - cosine
    return {"max_cosine_error": float(error.max()), "mean_cosine_error": float(error.mean())}


def export_backends(
    model_dir: str | os.PathLike,
    reference_texts: list[str],
    scorer: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    backends: list[str] | None = None,
    reference_labels: list[int] | None = None,
    batch_size: int = 32,
    calibration_texts: list[str] | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Export every installed backend into ``model_dir`` (``backends``: by default those worth
    making on this CPU, :func:`default_backends`; the others are recorded with the reason),
    check it against PyTorch on ``reference_texts`` and write ``model_dir/backends.json``;
    returns its content.

    ``scorer(vectors, texts) -> scores`` (e.g. ``workbench.classifier.classifier_scorer``) adds
    the share of tickets whose predicted category is the same as with PyTorch, and with
    ``reference_labels``
    the paired bootstrap interval of the macro-F1 difference (see ``MAX_MACRO_F1_DROP``).
    OpenVINO int8 is calibrated on ``calibration_texts`` (training tickets; default: the first
    300 reference texts), which should not be the tickets it is checked on. A backend that
    cannot be exported here is recorded with ``checked: false`` and its error; the others go on.
    """
    folder = model_folder(model_dir)
    texts = [str(t) for t in reference_texts if str(t).strip()]
    if len(texts) < 8:
        raise BadInputError("export_backends: need at least 8 reference texts to check the exports")
    left_out = {} if backends else {b: r for b, r in default_backends().items() if r}
    wanted = [b for b in (backends or FILES) if b != "torch" and b not in left_out]
    torch_model = models.load_model(folder, device="cpu")
    ref = _Reference.of(torch_model, texts, reference_texts, reference_labels, scorer, batch_size)
    report: dict[str, Any] = {
        "torch_sha256": _torch_weights_sha(folder),
        "reference_texts": len(texts),
        "batch_size": batch_size,
        "threads": torch_threads(),
        "backends": {
            "torch": {"file": None, "checked": True, "tickets_per_s": round(ref.speed, 1)}
        },
    }
    for backend, reason in left_out.items():
        report["backends"][backend] = {"file": FILES[backend], "checked": False, "reason": reason}
    for backend in wanted:
        entry: dict[str, Any] = {"file": FILES[backend], "checked": False}
        report["backends"][backend] = entry
        if not exporter_installed(backend):
            entry["reason"] = f"{EXPORTER[backend]} is not installed"
            continue
        started = time.perf_counter()
        try:
            _export(torch_model, folder, backend, list(calibration_texts or texts[:300]))
            entry["export_s"] = round(time.perf_counter() - started, 1)
            runtime = load_model(folder, device="cpu", backend=backend, check=False)
            vectors, speed = _timed_encode(runtime, texts, batch_size)
            single = np.concatenate(
                [runtime.encode([t], normalize_embeddings=True) for t in texts[:4]]
            )
        except Exception as error:  # an exporter failing must not stop the others
            entry["reason"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            continue
        sha256 = _export_sha(folder / FILES[backend])
        problems = _check_export(entry, backend, ref, (vectors, single, speed), sha256, seed)
        entry["checked"] = not problems
        if problems:
            entry["reason"] = "; ".join(problems)
    temporary = folder / f".{REPORT}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(report, indent=2), encoding="utf-8")
    os.replace(temporary, folder / REPORT)
    return report


@dataclass
class _Reference:
    """PyTorch's embeddings of the reference tickets, and what the exports are checked against:
    its speed, its predicted categories (with a scorer) and its macro-F1 (with labels)."""

    texts: list[str]
    vectors: np.ndarray
    speed: float
    scorer: Callable[[np.ndarray, list[str]], np.ndarray] | None
    argmax: np.ndarray | None
    truth: np.ndarray | None
    torch_f1: float | None

    @classmethod
    def of(cls, torch_model, texts, reference_texts, reference_labels, scorer, batch_size):
        vectors, speed = _timed_encode(torch_model, texts, batch_size)
        argmax = scorer(vectors, texts).argmax(axis=1) if scorer else None
        truth = None
        if scorer is not None and reference_labels is not None:
            truth = np.asarray(
                [
                    label
                    for text, label in zip(reference_texts, reference_labels, strict=True)
                    if str(text).strip()
                ]
            )
        reference = cls(texts, vectors, speed, scorer, argmax, truth, None)
        if truth is not None:
            reference.torch_f1 = reference.macro_f1(argmax)
        return reference

    def macro_f1(self, predicted: np.ndarray) -> float:
        from sklearn.metrics import f1_score

        return float(f1_score(self.truth, predicted, average="macro", zero_division=0))


def _export(torch_model, folder: Path, backend: str, calibration_texts: list[str]) -> None:
    """Write ``backend``'s file into the model folder (every export starts from the ONNX one)."""
    onnx_file = folder / FILES["onnx"]
    file = folder / FILES[backend]
    if backend == "onnx" or not onnx_file.exists():
        _export_onnx(torch_model, onnx_file)
    if backend == "onnx-int8":
        _export_onnx_int8(onnx_file, file)
    elif backend == "openvino":
        _export_openvino(onnx_file, file)
    elif backend == "openvino-int8":
        _export_openvino_int8(torch_model, onnx_file, file, calibration_texts)


def _check_export(
    entry: dict[str, Any],
    backend: str,
    ref: _Reference,
    measured: tuple[np.ndarray, np.ndarray, float],
    sha256: str,
    seed: int,
) -> list[str]:
    """Record an export's errors, hash, speed and agreement in ``entry``; the checks it fails.

    ``measured``: the export's vectors of the reference texts (in batches, then 4 one by one)
    and its speed."""
    vectors, single, speed = measured
    errors = compare(
        np.concatenate([ref.vectors, ref.vectors[:4]]), np.concatenate([vectors, single])
    )
    entry.update({k: float(f"{v:.3g}") for k, v in errors.items()})
    entry["sha256"] = sha256
    entry["tickets_per_s"] = round(speed, 1)
    entry["speedup"] = round(speed / ref.speed, 2)
    problems = []
    if errors["max_cosine_error"] > MAX_COSINE_ERROR[backend]:
        problems.append(
            f"max cosine error {errors['max_cosine_error']:.3g} > {MAX_COSINE_ERROR[backend]}"
        )
    if 1 - errors["mean_cosine_error"] < MIN_MEAN_COSINE[backend]:
        problems.append(
            f"mean cosine {1 - errors['mean_cosine_error']:.5f} < {MIN_MEAN_COSINE[backend]}"
        )
    if ref.scorer is None:
        return problems
    predicted = ref.scorer(vectors, ref.texts).argmax(axis=1)
    agreement = float(np.mean(predicted == ref.argmax))
    entry["argmax_agreement"] = round(agreement, 4)
    if agreement < MIN_AGREEMENT:
        problems.append(f"predictions agree on {agreement:.1%} < {MIN_AGREEMENT:.0%}")
    if ref.truth is not None:
        drop = ref.torch_f1 - ref.macro_f1(predicted)
        # The drop (PyTorch − export) is the change export → PyTorch.
        low, high = paired_change_interval(ref.truth, predicted, ref.argmax, seed=seed)
        entry.update(
            macro_f1_drop=round(drop, 4),
            macro_f1_drop_interval=[round(low, 4), round(high, 4)],
            checked_on=f"{len(ref.truth)} labelled tickets",
        )
        if high > MAX_MACRO_F1_DROP:
            problems.append(
                f"macro-F1 up to {high * 100:.2f} points below torch (95 % interval "
                f"{low * 100:.2f} to {high * 100:.2f}) > {MAX_MACRO_F1_DROP * 100:.1f}"
            )
    return problems


def paired_change_interval(
    truth: np.ndarray,
    reference: np.ndarray,
    current: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 42,
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of macro-F1(current) − macro-F1(reference), tickets
    resampled together (paired: the pairing is what makes a 0.1-point difference measurable).

    The one paired interval: the export check and ``workbench compare`` both use it. Counted
    with bincounts, all resamples at once: sklearn's ``f1_score`` per resample took seconds per
    comparison; macro-F1 averages, as sklearn's does, over the categories present in the
    resample's labels or predictions."""
    classes, codes = np.unique(np.concatenate([truth, reference, current]), return_inverse=True)
    k, n = len(classes), len(truth)
    y, a, b = codes[:n], codes[n : 2 * n], codes[2 * n :]
    rng = np.random.default_rng(seed)
    changes = []
    for start in range(0, resamples, 200):
        picks = rng.integers(0, n, size=(min(200, resamples - start), n))
        offset = np.arange(len(picks))[:, None] * k
        changes.append(_macro_f1(y, b, picks, offset, k) - _macro_f1(y, a, picks, offset, k))
    low, high = np.percentile(np.concatenate(changes), [2.5, 97.5])
    return float(low), float(high)


def _macro_f1(y: np.ndarray, predicted: np.ndarray, picks, offset, k: int) -> np.ndarray:
    size = len(picks) * k
    truth, guess = (y[picks] + offset).ravel(), (predicted[picks] + offset).ravel()
    hits = np.bincount(truth[truth == guess], minlength=size).reshape(-1, k)
    total = (np.bincount(truth, minlength=size) + np.bincount(guess, minlength=size)).reshape(-1, k)
    f1 = np.divide(2 * hits, total, out=np.zeros(total.shape), where=total > 0)
    return f1.sum(axis=1) / (total > 0).sum(axis=1)
