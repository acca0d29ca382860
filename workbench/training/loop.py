"""The training loop.

Why a hand-written loop rather than ``SentenceTransformerTrainer``: on a CPU the plain trainer
pads every batch to its longest ticket (one 900-word e-mail thread pads 31 short tickets to 256
tokens), re-tokenises every step, and merges the ticket and label columns into one forward
padded to the ticket width. Here texts are tokenised once, batches are bucketed by token length,
each distinct category name in a batch is embedded once, and the loss is computed by the
library's own loss classes (``compute_loss_from_embeddings``), with the trainer's defaults:
AdamW (no weight decay), linear schedule, gradient clipping at 1.0. On a GPU it uses autocast.

Several processes (``workbench train --processes N`` or ``accelerate launch``) run under
Hugging Face Accelerate: DDP over gloo on CPUs, NCCL on GPUs. Every rank builds the same batch
list from the seed and computes the loss on its share of each global batch (gradients are
averaged), so a global batch and the number of steps per epoch are those of one process.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.embeddings import progress_stream
from workbench.errors import BadInputError
from workbench.frozen import (
    LowerStates,
    build_lower_states,
    freeze_lower,
    lower_forward,
    top_embeddings,
)
from workbench.labels import label_texts, unnamed_labels
from workbench.models import cpu_cores, pick_device
from workbench.training.losses import loss_class_weights, make_loss
from workbench.training.pairs import grouped_batches, length_batches
from workbench.training.recipes import LABEL_ID_PAIRS, PROTOTYPE_LR_FACTOR

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


# The clock the time budget reads (tests replace it with a simulated one: a budget's decisions
# must not depend on the speed of the machine that tests them).
clock = time.perf_counter


def seed_everything(seed: int) -> None:
    """Same seed ⇒ same pairs, same batches, same dropout masks (on one machine)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TokenCache:
    """Each distinct text tokenised once (truncated like the model), padded per batch.

    Tokenising once and padding per batch (with ``tokenizer.pad``) is what makes length-bucketed
    batches cheap: the plain trainer re-tokenises every step and pads to the longest ticket.
    """

    def __init__(self, model: SentenceTransformer, texts: list[str], max_seq_length: int):
        self.tokenizer = model.tokenizer
        # Padding pre-tokenised ids is what we want here; the fast tokenizer's hint is not.
        getattr(self.tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
        unique = list(dict.fromkeys(texts))
        self.index = {t: i for i, t in enumerate(unique)}
        encoded = self.tokenizer(
            unique, truncation=True, max_length=max_seq_length, add_special_tokens=True
        )
        self.ids = encoded["input_ids"]
        self.has_types = "token_type_ids" in encoded
        self.lengths = np.array([len(x) for x in self.ids], dtype=np.int64)

    def batch(self, positions: list[int], device: str) -> dict:
        import torch

        features = dict(
            self.tokenizer.pad(
                {"input_ids": [self.ids[p] for p in positions]},
                padding="longest",
                return_attention_mask=True,
                return_tensors="pt",
            )
        )
        if self.has_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        return {k: v.to(device) for k, v in features.items()}


def make_optimizer(
    model: SentenceTransformer, params: dict[str, Any], total_steps: int, loss_module=None
):
    """AdamW and the schedule of the HF trainer's defaults (decay skips biases and LayerNorm).

    A loss with parameters of its own (the softmax prototypes) trains them at a higher rate;
    with ``layer_lr_decay`` < 1 the lower encoder layers learn slower than the top ones.
    """
    import torch

    lr = learning_rate(params)
    rates = layer_rates(model, float(params.get("layer_lr_decay", 1.0)))
    groups: dict[tuple[float, bool], list] = {}
    seen = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = not ("bias" in name or "LayerNorm" in name)
        groups.setdefault((rates(name), decays), []).append(parameter)
        seen.append(parameter)
    param_groups = [
        {
            "params": members,
            "weight_decay": float(params["weight_decay"]) if decays else 0.0,
            "lr": lr * rate,
        }
        for (rate, decays), members in groups.items()
    ]
    own = [p for p in getattr(loss_module, "parameters", lambda: [])() if p.requires_grad]
    own = [p for p in own if all(p is not q for q in seen)]
    if own:
        param_groups.append({"params": own, "weight_decay": 0.0, "lr": lr * PROTOTYPE_LR_FACTOR})
    optimizer = torch.optim.AdamW(param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    return optimizer, make_scheduler(optimizer, params, total_steps)


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_rates(model, decay: float):
    """Name → learning-rate factor: decay^(L − 1 − i) for encoder layer i of L (0 = lowest),
    decay^L for the embeddings, 1 for the top layer and everything above the encoder.

    L is read from the parameter names (``…layer.5.…``), so BERT, DistilBERT and other
    encoders with numbered layers all work; a model without them is refused, not left undecayed.
    """
    if decay == 1.0:
        return lambda name: 1.0
    indices = [int(m.group(1)) for n, _ in model.named_parameters() if (m := _LAYER.search(n))]
    if not indices:
        raise BadInputError(
            f"parameter layer_lr_decay={decay}: the base model has no numbered encoder layers "
            "to decay; use layer_lr_decay=1"
        )
    n_layers = max(indices) + 1

    def rate(name: str) -> float:
        match = _LAYER.search(name)
        if match:
            return decay ** (n_layers - 1 - int(match.group(1)))
        if ".embeddings." in f".{name}":
            return decay**n_layers
        return 1.0

    return rate


def make_scheduler(optimizer, params: dict[str, Any], total_steps: int, done_steps: int = 0):
    """The learning-rate schedule over ``total_steps``, advanced to ``done_steps``.

    A time budget that shortens training rebuilds the schedule for the new total, so a linear
    schedule still decays to zero at the last step instead of stopping half-way down.
    """
    from transformers import get_scheduler

    warmup = math.ceil(float(params["warmup_ratio"]) * total_steps)
    scheduler = get_scheduler(
        params["scheduler"],
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=max(total_steps, 1),
    )
    for _ in range(done_steps):
        scheduler.step()
    return scheduler


@dataclass
class TimeBudget:
    """Keep the fine-tune inside ``seconds`` of wall clock, re-planned as training runs.

    After ``probe_steps`` steps (or 5 % of the budget), and at every step after, the speed of
    the last ``window`` steps says how many steps still fit before the deadline; when that
    differs from the plan (fewer, or more up to ``planned_steps``: the first steps pay one-time
    costs and overstate a step), the plan changes to them (the caller refits the learning-rate
    schedule to the new total). A machine that gets busy half-way is seen within ``window``
    steps, and if the deadline comes anyway the fine-tune stops there. Every change of plan is
    recorded (``replans``: [step, new total]) so that ``ReplayedBudget`` can redo the same run
    on any machine without a clock.

    ``step_costs`` (one per planned step: the batch's padded tokens) make the speed a speed
    per token: length-bucketed batches differ several-fold in cost, so seconds per step alone
    would read a run of long batches as a slower machine, and how many steps fit depends on
    which batches are left. Without them every step costs the same.
    """

    seconds: float
    planned_steps: int
    probe_steps: int = 20
    window: int = 20
    # A new plan must cut at least this share of the steps left, or add at least
    # ``min_growth_share``: no schedule rebuild per step for a window's noise.
    min_cut_share: float = 0.01
    min_growth_share: float = 0.05
    replans: list[list[int]] = field(default_factory=list)
    stopped_at_deadline: bool = False
    seconds_per_step: float | None = None
    # Seconds already spent when the first step starts (tokenising): they count against the
    # budget but are not a step's cost, so the first estimate of the step time leaves them out.
    offset: float = 0.0
    step_costs: list[float] | None = None
    _times: list[float] = field(default_factory=list)
    _cumulative: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.step_costs is not None:
            self._cumulative = np.concatenate([[0.0], np.cumsum(self.step_costs, dtype=float)])

    def begin(self, elapsed: float) -> None:
        """Called as the first step starts, ``elapsed`` seconds into the fine-tune."""
        self.offset = float(elapsed)

    @property
    def decided(self) -> bool:
        return self.seconds_per_step is not None

    @property
    def cut_to(self) -> int | None:
        return self.replans[-1][1] if self.replans else None

    def check(self, step: int, elapsed: float, total: int | None = None) -> int | None:
        """The new total number of steps when the plan changes at ``step`` (``step`` itself =
        stop now), else None. ``elapsed``: seconds since the fine-tune started."""
        if self.seconds <= 0:
            return None
        total = self.planned_steps if total is None else total
        self._times.append(elapsed)
        if elapsed >= self.seconds:
            self.stopped_at_deadline = step < total
            return self._replan(step, step, total)
        if step < min(self.probe_steps, total) and elapsed - self.offset < 0.05 * self.seconds:
            return None
        recent = self._times[-(self.window + 1) :]
        if len(recent) > self.window:
            per_cost = (recent[-1] - recent[0]) / max(self._cost(step - self.window, step), 1e-9)
        else:
            per_cost = (elapsed - self.offset) / max(self._cost(0, step), 1e-9)
        self.seconds_per_step = per_cost * self._cost(0, step) / max(step, 1)
        fits = step + self._steps_within((self.seconds - elapsed) / max(per_cost, 1e-12), step)
        fits = min(max(step, fits), self.planned_steps)
        left = total - step
        if total - fits < max(1, self.min_cut_share * left) and fits - total < max(
            1, self.min_growth_share * left
        ):
            return None
        return self._replan(step, fits, total)

    def _cost(self, start: int, stop: int) -> float:
        """The cost of steps ``start+1 .. stop`` (1 each without ``step_costs``)."""
        if self.step_costs is None:
            return float(stop - start)
        return float(self._cumulative[stop] - self._cumulative[start])

    def _steps_within(self, cost: float, step: int) -> int:
        """How many steps after ``step`` cost at most ``cost`` together."""
        if self.step_costs is None:
            return int(cost)
        return (
            int(np.searchsorted(self._cumulative, self._cumulative[step] + cost, "right"))
            - 1
            - step
        )

    def _replan(self, step: int, new_total: int, total: int) -> int | None:
        if new_total == total:
            return None
        self.replans.append([int(step), int(new_total)])
        return new_total

    def record(self, per_epoch: int, steps: int) -> dict[str, Any]:
        """What the budget did, for recipe.json, the model card and the report page."""
        return {
            "seconds": self.seconds,
            "planned_steps": self.planned_steps,
            "planned_epochs": round(self.planned_steps / max(per_epoch, 1), 3),
            "trained_steps": steps,
            "trained_epochs": round(steps / max(per_epoch, 1), 3),
            "cut": steps < self.planned_steps,
            "replans": [list(r) for r in self.replans],
            "stopped_at_deadline": self.stopped_at_deadline,
            "seconds_per_step": None
            if self.seconds_per_step is None
            else round(self.seconds_per_step, 4),
        }


@dataclass
class ReplayedBudget:
    """The plan changes of a recorded budgeted run, redone at the same steps with no clock:
    same steps, same learning-rate schedule, same model on any machine."""

    replans: list[list[int]]
    planned_steps: int

    def begin(self, elapsed: float) -> None:
        """Nothing to measure: the plan is the recorded one."""

    def check(self, step: int, elapsed: float, total: int | None = None) -> int | None:
        for at, new_total in self.replans:
            if at == step:
                return int(new_total)
        return None


def probe_train_seconds(
    model: SentenceTransformer, texts: list[str], params: dict[str, Any], frozen: tuple[int, ...]
) -> dict[int, float]:
    """Seconds per example of a training step's forward and backward with ``k`` lower layers
    frozen, for each ``k`` in ``frozen``, measured here at the mean token length of ``texts``.

    One batch of the recipe's size, of the texts nearest the median length, is timed
    ``PROBE_REPEATS`` times after a warm-up: the same shape each time, since a first batch of
    a new shape pays one-time kernel costs that the fine-tune's thousands of steps do not. Its
    cost per token times the mean length is the cost per example. The lower layers' outputs are
    computed untimed (the fine-tune reads them from its states); the gradients are dropped, so
    the model is unchanged. A measurement of this machine, like the encoding speed the plan
    reads: wall-clock time, not the budget's (replaceable) ``clock``.
    """
    import torch

    device = str(next(model.parameters()).device)
    device_type = torch.device(device).type
    use_amp, amp_dtype = mixed_precision(str(params["precision"]), device_type)
    tokens = TokenCache(model, texts, int(params["max_seq_length"]))
    lengths = tokens.lengths
    nearest = np.argsort(np.abs(lengths - np.median(lengths)), kind="stable")
    batch = nearest[: int(params["batch_size"])].tolist()
    features = tokens.batch(batch, device)
    padded = features["input_ids"].numel()
    seconds: dict[int, float] = {}
    model.train()
    try:
        for k in frozen:
            hidden = lower_forward(model, k, features) if k else None
            times = []
            for _ in range(PROBE_REPEATS + 1):
                started = time.perf_counter()
                with torch.autocast(device_type=device_type, dtype=amp_dtype, enabled=use_amp):
                    if k:
                        vectors = top_embeddings(model, k, hidden, features["attention_mask"])
                    else:
                        vectors = _embed(model, features)
                vectors.float().pow(2).mean().backward()
                model.zero_grad(set_to_none=True)
                times.append(time.perf_counter() - started)
            seconds[k] = float(np.median(times[1:])) / padded * float(lengths.mean())
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    return seconds


PROBE_REPEATS = 3


@dataclass
class FitResult:
    log: pd.DataFrame  # step, epoch, loss, learning_rate, seconds
    seconds: float
    steps: int
    device: str
    precision: str = "fp32"
    prototypes: np.ndarray | None = None  # (labels, dim), normalised; loss=softmax only
    budget: dict[str, Any] | None = None  # what the time budget did (TimeBudget.record)
    processes: int = 1  # data-parallel processes that trained the model
    devices: list[str] | None = None  # each process's device, rank order
    main_process: bool = True  # False on the other ranks: they write nothing


def _embed(model, features: dict):
    return model(features)["sentence_embedding"]


def mixed_precision(precision: str, device_type: str) -> tuple[bool, Any]:
    """Whether to autocast, and to which type.

    bf16 autocast keeps fp32 master weights and gradients; on CPUs with bf16 units (AVX512-BF16,
    AMX) it halves to quarters the step time, on GPUs it is the usual mixed precision. fp16 is
    for older GPUs and uses a gradient scaler.
    """
    import torch

    if precision == "fp32" or device_type not in {"cpu", "cuda"}:
        return False, torch.float32
    if precision == "fp16":
        return device_type == "cuda", torch.float16
    if device_type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" or bf16:
            return True, torch.bfloat16 if bf16 else torch.float16
        return True, torch.float16
    cpu_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) or bool(
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return (precision == "bf16" or cpu_bf16), torch.bfloat16


def fit(
    model: SentenceTransformer,
    examples: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
    progress: bool = True,
    labels: list[str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    replay: list[list[int]] | None = None,
    callback: Callable[[int, float], None] | None = None,
    callback_every: int = 0,
    states: LowerStates | None = None,
) -> FitResult:
    """Fine-tune ``model`` in place on ``examples`` (from ``build_pairs``).

    ``labels`` (the sorted category names) are needed by ``loss=softmax`` only; its prototypes
    start at the ``descriptions`` of coded labels, or at class centroids where a code has none.
    ``params["time_budget"]`` (seconds, tokenising included) bounds the fine-tune; ``replay``
    (a budgeted run's recorded ``replans``) redoes that run's plan changes without a clock.

    ``callback(step, epoch)`` is called every ``callback_every`` steps (0: at the end of each
    epoch) and at the last step, with the model in eval mode (a search's pruner measures
    validation there; an exception it raises, e.g. ``optuna.TrialPruned``, ends the fit). One
    process only; its cost is whatever the callback does. ``states``: the lower layers'
    outputs for ``params["frozen_layers"]`` > 0 (``workbench.frozen``).
    """
    import torch

    started = clock()
    seed_everything(seed)
    device, accelerator = _place(model, params)
    world = accelerator.num_processes
    data = _FitData.of(model, examples, params, labels, descriptions)
    _use_frozen_layers(data, model, params, states, world, progress)
    plan = _step_plan(params, data, seed, world)
    per_epoch = len(plan[0]) if plan else 0
    total_steps = min(sum(len(p) for p in plan), math.ceil(float(params["epochs"]) * per_epoch))
    optimizer, scheduler = make_optimizer(model, params, total_steps, data.loss_module)
    budget = _budget(params, replay, total_steps, [data.cost(b) for e in plan for b in e])
    device_type = torch.device(device).type
    use_amp, amp_dtype = mixed_precision(str(params["precision"]), device_type)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    batch_loss = _batch_loss_function(model, data, device, accelerator)
    losses = _LossLog(max(1, min(int(params["log_every"]), total_steps // 20)))  # short runs: more
    budget.begin(clock() - started)
    model.train()
    step = 0
    bar = _progress_bar(total_steps, progress and accelerator.is_main_process)
    calls = callback is not None and world == 1
    try:
        for epoch_index, batches in enumerate(plan):
            for batch_number, batch in enumerate(batches, start=1):
                if step >= total_steps:
                    break
                with torch.autocast(device_type=device_type, dtype=amp_dtype, enabled=use_amp):
                    loss = batch_loss(shard(batch, accelerator.process_index, world))
                _optimizer_step(model, loss, optimizer, scheduler, scaler, params)
                step += 1
                losses.add(loss)
                bar.update(1)
                cut = shared_budget_check(budget, step, clock() - started, accelerator, total_steps)
                if cut is not None:
                    total_steps, scheduler = _replanned(
                        cut, step, scheduler, optimizer, params, bar
                    )
                epoch = round(epoch_index + batch_number / max(len(batches), 1), 4)
                if step % losses.every == 0 or step == total_steps:
                    lr = scheduler.get_last_lr()[0]
                    mean = losses.write(step, epoch, lr, accelerator, device)
                    bar.set_postfix(loss=f"{mean:.4f}")
                last = batch_number == len(batches)  # of this epoch
                if calls and _callback_due(step, total_steps, last, callback_every):
                    model.eval()
                    callback(step, epoch)
                    model.train()
    finally:
        bar.close()
        model.eval()
    precision = str(amp_dtype).replace("torch.", "") if use_amp else "fp32"
    return _fit_result(losses, step, device, precision, data, budget, per_epoch, accelerator)


def _replanned(total_steps: int, step: int, scheduler, optimizer, params, bar):
    """The budget changed the plan at ``step``: refit the schedule (unless it stopped there)."""
    if step < total_steps:  # else: stopped at the deadline
        scheduler = make_scheduler(optimizer, params, total_steps, step)
    bar.total = total_steps
    bar.refresh()
    return total_steps, scheduler


def _use_frozen_layers(data, model, params, states, world: int, progress: bool) -> None:
    """``frozen_layers`` > 0: train the top layers from the lower layers' states."""
    if not frozen_layers(params):
        return
    if world > 1:
        raise BadInputError(
            "parameter frozen_layers: the top-layer fine-tune runs in one process; "
            "use --processes 1 or frozen_layers=0"
        )
    data.use_states(model, frozen_layers(params), states, progress)


# learning_rate=auto (classify, fusion): every layer trains at the reference rate; the top layers
# alone, from the frozen layers' states, at a higher one. Measured on the real tickets with the
# lower 4 of 6 layers frozen, 2 epochs, seed 42 (bench/RESULTS.md, "Frozen lower layers"):
# validation macro-F1 rose with the rate from 5e-5 through 1e-4 and 2e-4 to 4e-4 (8e-4 untried).
FULL_LEARNING_RATE = 5e-5
TOP_LAYERS_LEARNING_RATE = 4e-4


def learning_rate(params: Mapping[str, Any]) -> float:
    """The fine-tune's learning rate: a number as given, ``auto`` by what trains."""
    value = params.get("learning_rate", FULL_LEARNING_RATE)
    if value != "auto":
        return float(value)
    return TOP_LAYERS_LEARNING_RATE if frozen_layers(params) else FULL_LEARNING_RATE


def frozen_layers(params: Mapping[str, Any]) -> int:
    """The lower layers a fine-tune keeps frozen (``auto`` left unplanned: none)."""
    value = params.get("frozen_layers", 0)
    return 0 if value in (None, "auto") else int(value)


def _budget(params: dict[str, Any], replay, total_steps: int, step_costs: list[float]):
    """The time budget of this fine-tune, or the replay of a budgeted run's plan changes."""
    if replay is not None:
        return ReplayedBudget([list(r) for r in replay], total_steps)
    return TimeBudget(
        float(params.get("time_budget", 0) or 0),
        total_steps,
        step_costs=step_costs[:total_steps],
    )


def _progress_bar(total_steps: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total_steps,
        desc="training",
        unit="step",
        file=progress_stream(),
        leave=False,
        disable=not show,
    )


def _fit_result(losses, step, device, precision, data, budget, per_epoch, accelerator) -> FitResult:
    world = accelerator.num_processes
    return FitResult(
        log=losses.frame(),
        seconds=time.perf_counter() - losses.started,
        steps=step,
        device=str(device),
        precision=precision,
        prototypes=data.prototypes(),
        budget=budget_record(budget, per_epoch, step),
        processes=world,
        devices=_all_devices(device, world),
        main_process=accelerator.is_main_process,
    )


def _callback_due(step: int, total_steps: int, epoch_end: bool, every: int) -> bool:
    """Every ``every`` steps (0: at the end of each epoch), and at the last step."""
    due = step % every == 0 if every else epoch_end
    return due or step == total_steps


@dataclass
class _LossLog:
    """The loss curve: the mean loss of every ``every`` steps (of the global batch when
    several processes train), with the learning rate and the seconds since the first step."""

    every: int
    started: float = field(default_factory=time.perf_counter)
    rows: list[dict[str, float]] = field(default_factory=list)
    running: float = 0.0
    counted: int = 0

    def add(self, loss) -> None:
        self.running += float(loss.detach())
        self.counted += 1

    def write(self, step: int, epoch: float, learning_rate: float, accelerator, device) -> float:
        """Add a row with the mean loss since the last one; returns that mean."""
        if accelerator.num_processes > 1:  # the log shows the loss of the global batch
            import torch

            mean = torch.tensor([self.running / self.counted], device=device)
            self.running, self.counted = float(accelerator.reduce(mean, "mean")[0]), 1
        mean = self.running / self.counted
        self.rows.append(
            {
                "step": step,
                "epoch": epoch,
                "loss": mean,
                "learning_rate": learning_rate,
                "seconds": round(time.perf_counter() - self.started, 2),
            }
        )
        self.running, self.counted = 0.0, 0
        return mean

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.rows, columns=["step", "epoch", "loss", "learning_rate", "seconds"]
        )


def _place(model: SentenceTransformer, params: dict[str, Any]):
    """Put the model on this process's device (returned with the Accelerate handle), with the
    CPU threads it may use and the recipe's truncation length."""
    import torch

    device = pick_device(None if params["device"] == "auto" else params["device"])
    accelerator = make_accelerator(device)
    world = accelerator.num_processes
    if world > 1:
        device = str(accelerator.device)
        device = "cpu" if device.startswith("cpu") else device
    if int(params["threads"]) > 0:
        torch.set_num_threads(int(params["threads"]))
    elif world > 1 and device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # N processes on one machine share its cores instead of each taking all of them.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, cpu_cores() // local))
    model.to(device)
    model.max_seq_length = int(params["max_seq_length"])
    return device, accelerator


@dataclass
class _FitData:
    """The loss and the tokenised examples: token rows of each side, and the targets."""

    loss_module: Any
    tokens: TokenCache
    pos_a: np.ndarray
    pos_b: np.ndarray | None  # None: single texts with label ids (labelled/grouped pairs)
    targets: np.ndarray
    states: LowerStates | None = None  # frozen lower layers: each text's outputs of them
    state_rows: np.ndarray | None = None  # token-cache position -> row of ``states``

    def use_states(self, model, k: int, states: LowerStates | None, progress: bool) -> None:
        """Freeze the lower ``k`` layers; later steps run the top ones from their outputs."""
        texts = list(self.tokens.index)
        if states is None or states.k != k or any(t not in states for t in texts):
            states = build_lower_states(model, texts, k, store=False, progress=progress)
        freeze_lower(model, k)
        self.states, self.state_rows = states, states.positions(texts)

    def embed(self, model, positions: list[int], device: str):
        """The embeddings of these token-cache positions, from the lower-layer states if any."""
        if self.states is None:
            return _embed(model, self.tokens.batch(positions, device))
        hidden, mask = self.states.batch(self.state_rows[positions], device)
        return top_embeddings(model, self.states.k, hidden, mask)

    @classmethod
    def of(cls, model, examples, params, labels, descriptions) -> _FitData:
        loss_module = make_loss(
            model,
            params["loss"],
            label_texts(labels, params["label_text"], descriptions) if labels else None,
            examples=examples,
            unnamed=[labels.index(label) for label in unnamed_labels(labels or [], descriptions)],
            class_weights=loss_class_weights(
                params,
                examples["label_id"].to_numpy() if "label_id" in examples else None,
                len(labels or []),
            ),
        )
        by_label = params["pairs"] in LABEL_ID_PAIRS
        texts_a = examples["a"].tolist()
        tokens = TokenCache(
            model,
            texts_a + ([] if by_label else examples["b"].tolist()),
            int(params["max_seq_length"]),
        )
        pos_a = np.array([tokens.index[t] for t in texts_a])
        pos_b = None if by_label else np.array([tokens.index[t] for t in examples["b"]])
        targets = examples["label_id" if by_label else "score"].to_numpy()
        return cls(loss_module, tokens, pos_a, pos_b, targets)

    def cost(self, batch: np.ndarray) -> float:
        """A step's relative cost: the padded tokens of its batch (texts b included)."""
        cost = len(batch) * int(self.tokens.lengths[self.pos_a[batch]].max(initial=1))
        if self.pos_b is not None:
            cost += len(batch) * int(self.tokens.lengths[self.pos_b[batch]].max(initial=1))
        return float(cost)

    def prototypes(self) -> np.ndarray | None:
        """The learned category prototypes (``loss=softmax``), else None."""
        if not hasattr(self.loss_module, "normalized_prototypes"):
            return None
        return self.loss_module.normalized_prototypes().detach().float().cpu().numpy()


def _step_plan(params: dict[str, Any], data: _FitData, seed: int, world: int) -> list:
    """The batches of every (whole) epoch, drawn up front from the seed."""
    rng = np.random.default_rng(seed)
    batch_size = int(params["batch_size"])

    def epoch_batches() -> list[np.ndarray]:
        if params["pairs"] == "grouped":
            return grouped_batches(data.targets.astype(int), batch_size, rng)
        lengths = data.tokens.lengths[data.pos_a]
        return length_batches(lengths, batch_size, rng, bool(params["length_bucketing"]))

    plan = [epoch_batches() for _ in range(math.ceil(float(params["epochs"])))]
    if world > 1:
        # Every rank has the same plan; a tail batch smaller than the process count is dropped
        # so that every rank takes every step (a rank without data would hang the others).
        plan = [[b for b in batches if len(b) >= world] for batches in plan]
    return plan


def _batch_loss_function(model, data: _FitData, device: str, accelerator):
    """``batch -> loss``: one process calls the loss directly; several go through DDP."""
    parts = (data.loss_module, data, data.pos_a, data.pos_b, data.targets)
    if accelerator.num_processes > 1:
        return accelerator.prepare_model(
            _BatchLossModule(model, *parts, device), device_placement=False
        )

    def batch_loss(batch):
        return _batch_loss(model, *parts, batch, device)

    return batch_loss


def _optimizer_step(model, loss, optimizer, scheduler, scaler, params: dict[str, Any]) -> None:
    """Backward, gradient clipping, the optimizer and the schedule: one training step."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    if params["max_grad_norm"] > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), params["max_grad_norm"])
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def _all_devices(device: str, world: int) -> list[str]:
    """Every process's device (one entry per rank)."""
    if world == 1:
        return [device]
    from accelerate.utils import gather_object  # accelerate: only multi-process runs need it

    return [str(d) for d in gather_object([device])]


def make_accelerator(device: str):
    """The Accelerate state of this process: one process (as a plain run) unless launched with
    several (``accelerate launch``/``workbench train --processes``): then gloo on CPUs, NCCL on
    GPUs. Mixed precision stays ours (``mixed_precision``), so ``precision=fp16`` keeps its
    gradient scaler."""
    from accelerate import Accelerator  # heavy (torch.distributed): only fit needs it
    from accelerate.utils import DistributedDataParallelKwargs

    # The encoder's unused pooler has no gradient: DDP must not wait for it.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # One process keeps its own device choice; asking Accelerate for cpu=True there would fail
    # in a session whose Accelerate state already holds a GPU (a notebook that trained on it).
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(cpu=several and device == "cpu", mixed_precision="no", kwargs_handlers=[ddp])


def shard(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's share of a global batch: every ``world``-th example from ``rank`` on, after
    trimming the batch to a multiple of ``world`` so every rank's loss has the same weight.

    Strided rather than contiguous: a label-grouped batch keeps every group on every rank.
    """
    return batch[: len(batch) - len(batch) % world][rank::world]


def budget_record(budget, per_epoch: int, steps: int) -> dict[str, Any] | None:
    """What the budget did (None without one); a replayed run records the plan it redid."""
    if isinstance(budget, ReplayedBudget):
        return {"replayed": True, "replans": budget.replans, "trained_steps": steps}
    return budget.record(per_epoch, steps) if budget.seconds > 0 else None


def shared_budget_check(
    budget, step: int, elapsed: float, accelerator, total: int | None = None
) -> int | None:
    """``budget.check`` decided by rank 0 and broadcast: every rank changes its plan (or stops)
    at the same step to the same total, whatever its own clock says."""
    if accelerator.num_processes == 1 or isinstance(budget, ReplayedBudget):
        return budget.check(step, elapsed, total)
    if budget.seconds <= 0:
        return None
    import torch
    from accelerate.utils import broadcast  # heavy (torch.distributed): only fit needs it

    cut = budget.check(step, elapsed, total) if accelerator.is_main_process else None
    state = torch.tensor(
        [
            -1.0 if cut is None else float(cut),
            budget.seconds_per_step or 0.0,
            float(budget.stopped_at_deadline),
        ],
        dtype=torch.float64,
        device=accelerator.device,
    )
    cut_to, per_step, stopped = broadcast(state, from_process=0).tolist()
    if not accelerator.is_main_process:
        budget.seconds_per_step = per_step or None
        budget.stopped_at_deadline = bool(stopped)
        if cut_to >= 0:
            budget.replans.append([int(step), int(cut_to)])
    return None if cut_to < 0 else int(cut_to)


def _batch_loss_module():
    import torch

    class BatchLoss(torch.nn.Module):
        """One forward per step for DDP: the encoder and the loss's own parameters (prototypes)
        together, whichever texts (ticket, category, other ticket) the batch embeds."""

        def __init__(self, model, loss_module, data, pos_a, pos_b, targets, device):
            super().__init__()
            self.model, self.loss = model, loss_module
            self.inputs = (data, pos_a, pos_b, targets, device)

        def forward(self, batch):
            data, pos_a, pos_b, targets, device = self.inputs
            return _batch_loss(self.model, self.loss, data, pos_a, pos_b, targets, batch, device)

    return BatchLoss


def _BatchLossModule(*args):  # noqa: N802 - a class made on first use (torch is imported lazily)
    return _batch_loss_module()(*args)


def _batch_loss(model, loss_module, data, pos_a, pos_b, targets, batch, device):
    """Embed each distinct text of the batch once, then the library's loss on the embeddings."""
    import torch

    a_positions = pos_a[batch]
    unique_a, inverse_a = np.unique(a_positions, return_inverse=True)
    embeddings_a = data.embed(model, unique_a.tolist(), device)[
        torch.as_tensor(inverse_a, device=device)
    ]
    if pos_b is None:
        labels = torch.as_tensor(targets[batch], dtype=torch.long, device=device)
        return loss_module.compute_loss_from_embeddings([embeddings_a.float()], labels)
    unique_b, inverse_b = np.unique(pos_b[batch], return_inverse=True)
    embeddings_b = data.embed(model, unique_b.tolist(), device)[
        torch.as_tensor(inverse_b, device=device)
    ]
    labels = torch.as_tensor(targets[batch], dtype=torch.float32, device=device)
    return loss_module.compute_loss_from_embeddings(
        [embeddings_a.float(), embeddings_b.float()], labels
    )
