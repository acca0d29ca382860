"""Embedding maps: what the base and the fine-tuned model "see", side by side.

Tickets are encoded through ``workbench.embeddings.encode`` (disk cache), reduced to 2-D or 3-D
with UMAP (cosine, fixed seed) and drawn as plotly scatter plots coloured with the shared
category colours. Large sets are sampled on purpose (stratified, ``umap_max_points``) and the
figures use SVG below ``svg_max_points`` so that static reports never show a blank WebGL canvas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.backends import backend_of
from workbench.classifier import load_classifier
from workbench.embeddings import encode, model_fingerprint
from workbench.evaluation import support_order
from workbench.figures import PALETTE, category_colors, escape_label, hover_text, tick_labels
from workbench.frozen import attach, build_lower_states, stored_lower_states
from workbench.heads import head_probabilities
from workbench.labels import label_names
from workbench.models import load_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SVG_MAX_POINTS = 8000
CORRECT_COLOR = "rgba(140,140,140,0.35)"
INCORRECT_COLOR = "#d62728"
VIEWS = ("true category", "predicted category", "correct / incorrect")
# Above this many categories the legend names the biggest ones (by tickets on the map) and
# groups the rest as one grey entry; every point's hover still names its own category.
MAP_LEGEND_LIMIT = 12
OTHER_COLOR = "#aab4be"
GREYS = {"rgb(136, 136, 136)", "rgb(165, 170, 153)"}  # palette colours too close to OTHER_COLOR
LEGEND_NAME_LIMIT = 40  # characters of a category name in a grouped legend


@dataclass
class LegendPlan:
    """Colour, legend entry and legend rank per category of a map."""

    colors: dict[str, str]
    entries: dict[str, str]  # escaped legend name; grouped categories share one
    ranks: dict[str, int]
    grouped: list[str]  # the categories folded into "other categories (N)"


def legend_plan(support: pd.Series, limit: int = MAP_LEGEND_LIMIT) -> LegendPlan:
    """Up to ``limit`` categories keep their own colour and legend entry; above it the
    ``limit`` biggest (by ``support``, ties by name) do and the rest become
    "other categories (N)" in grey: 50 colours cannot be told apart, a 50-line legend hides
    the map.
    """
    labels = sorted(str(k) for k in support.index)
    if len(labels) <= limit:
        colors = category_colors(labels)
        entries = {label: escape_label(label) for label in labels}
        return LegendPlan(colors, entries, {label: i for i, label in enumerate(labels)}, [])
    ordered = [str(k) for k in support_order(support)]
    top, rest = ordered[:limit], ordered[limit:]
    # Distinct colours for the named ones, none of them grey (grey is "other").
    palette = [c for c in PALETTE if c not in GREYS]
    colors = {label: palette[i % len(palette)] for i, label in enumerate(sorted(top))}
    colors |= {label: OTHER_COLOR for label in rest}
    other = f"other categories ({len(rest)})"
    # Long names are shortened in the legend (still unique); the hover has the whole name.
    short = dict(zip(top, tick_labels(top, LEGEND_NAME_LIMIT), strict=True))
    entries = {label: short[label] for label in top} | {label: other for label in rest}
    ranks = {label: i for i, label in enumerate(top)} | {label: len(top) for label in rest}
    return LegendPlan(colors, entries, ranks, rest)


# --------------------------------------------------------------------------- models and scores


@dataclass
class MapModel:
    """A model as the maps need it: cached embeddings and class scores from those embeddings.

    ``classifier`` is a ``workbench.classifier.Classifier`` when the fine-tuned run has one;
    without it (base model, or an older run) scores are cosine similarities to the category
    names, the zero-shot rule of the reference recipe.
    """

    name: str
    model: SentenceTransformer
    labels: list[str]
    classifier: object | None = None
    source: str = ""
    label_texts: list[str] | None = None  # what a head-less model compares with (descriptions)
    _label_vectors: np.ndarray | None = field(default=None, repr=False)

    def embed(self, texts: list[str] | pd.Series, cache: bool = True) -> np.ndarray:
        """Normalised embeddings through the shared on-disk cache."""
        return encode(self.model, list(texts), cache=cache, description=f"encoding ({self.name})")

    def label_vectors(self) -> np.ndarray:
        """Embeddings of the category names (drawn as labelled markers on the map).

        With a classifier: the texts it compares tickets to (names or descriptions); without,
        ``label_texts`` (the descriptions of coded labels) or the names.
        """
        if self._label_vectors is None:
            if self.classifier is not None:
                self._label_vectors = np.asarray(self.classifier.label_vectors())
            else:
                self._label_vectors = self.embed(self.label_texts or self.labels)
        return self._label_vectors

    def scores_from_embeddings(
        self, embeddings: np.ndarray, texts: list[str] | None = None
    ) -> np.ndarray:
        """Class scores (n, n_labels) from cached embeddings, without re-encoding.

        Head-less models score by cosine to the category names; a classifier with a trained
        head gives its probabilities (a TF-IDF fusion head also needs the ``texts``).
        """
        head = getattr(self.classifier, "head", None)
        if head is None:
            return np.asarray(embeddings @ self.label_vectors().T, dtype=np.float32)

        if head.get("kind") == "fusion" and texts is None:
            raise ValueError("a fusion head needs the ticket texts as well as their embeddings")
        return head_probabilities(head, embeddings, list(texts or []), len(self.labels))

    def scores(self, texts: list[str]) -> np.ndarray:
        """Scores for new text (typed tickets): not cached, so the cache holds only data."""
        texts = [str(t) for t in texts]
        return self.scores_from_embeddings(self.embed(texts, cache=False), texts)


def load_base(
    base_model: str,
    labels: list[str],
    max_seq_length: int | None = None,
    device: str | None = None,
    descriptions: dict[str, str] | None = None,
) -> MapModel:
    """The untrained base model, scored zero-shot against the category names.

    ``descriptions`` (of coded labels) replace the codes as the texts compared with.
    """
    model = load_model(base_model, device=device, max_seq_length=max_seq_length)
    texts = list(label_names(labels, descriptions).values())
    return MapModel("base model", model, list(labels), source=str(base_model), label_texts=texts)


def load_finetuned(
    training_dir: str | Path, device: str | None = None, inference: str | None = None
) -> MapModel | None:
    """The fine-tuned model of a run (``<run>/training``), or None when the run has none.

    A missing folder is normal (the notebook run alone); a broken one is an error.
    """
    training_dir = Path(training_dir)
    if not (training_dir / "model").exists() and not (training_dir / "labels.json").exists():
        return None
    classifier = load_classifier(training_dir, device=device, inference=inference)
    return MapModel(
        "fine-tuned",
        classifier.model,
        list(classifier.labels),
        classifier=classifier,
        source=str(training_dir),
    )


def reuse_training_states(
    training_dir: str | Path, models: list[MapModel], texts: list[str] | None = None
) -> int:
    """Give the base and the fine-tuned PyTorch model the lower-layer states their training
    kept (``frozen_layers`` > 0): their encodes then run the top layers only. With the base
    model (the weights and truncation the states were computed with) the states of ``texts``
    that training did not need (the test tickets) are added first, once for both models; the
    fine-tuned model shares those lower layers, frozen. Returns how many models got them."""
    recipe = Path(training_dir) / "recipe.json"
    record = json.loads(recipe.read_text(encoding="utf-8")) if recipe.exists() else {}
    record = record.get("frozen_layers") or {}
    k, fingerprint = record.get("frozen_layers"), record.get("base_fingerprint")
    if not k:
        return 0
    torch_models = [m for m in models if backend_of(m.model) == "torch"]
    base = [m for m in torch_models if m.classifier is None]
    if base and model_fingerprint(base[0].model) != fingerprint:
        torch_models = [m for m in torch_models if m.classifier is not None]
        base = []
    if not torch_models:
        return 0
    if base and texts:
        states = build_lower_states(base[0].model, texts, k)
    else:
        states = stored_lower_states(torch_models[0].model, fingerprint, k)
    for model in torch_models:
        attach(model.model, states)
    return len(torch_models) if states is not None else 0


def models_note(
    training_name: str, base: MapModel | None, tuned: MapModel | None, monitoring: bool
) -> str:
    """What notebook 03 maps: the base model only, the monitored model, or both."""
    if tuned is None:
        return (
            f"No fine-tuned model in {training_name} (the fine-tuning notebook did not run before "
            "this one): this report shows the base model only; predictions are its zero-shot "
            "cosine to the category names."
        )
    if monitoring:
        return (
            f"Model: {training_name} (encoder backend {backend_of(tuned.model)}). Every row is "
            "evaluated, so this page shows the model as it scores; its comparison with the base "
            "model is on the report that trained it."
        )
    return (
        f"Fine-tuned model: {training_name}. Base model: {base.source} (max_seq_length "
        f"{base.model.max_seq_length}). Base-model predictions are zero-shot: cosine similarity "
        "to the category names."
    )


def embed_rows(
    model: MapModel, frame: pd.DataFrame, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and class scores of ``frame``'s ``rows`` (all rows when None).

    Both come back frame-length with NaN in the rows not encoded: a model encodes only what a
    page shows of it, and reading a row it did not encode fails loudly instead of using zeros.
    """
    texts = frame["text"].astype(str)
    positions = np.arange(len(frame)) if rows is None else np.asarray(rows, dtype=int)
    chosen = texts.iloc[positions].tolist()
    vectors = model.embed(chosen)
    scores = model.scores_from_embeddings(vectors, chosen)
    embeddings = np.full((len(frame), vectors.shape[1]), np.nan, dtype=np.float32)
    full_scores = np.full((len(frame), scores.shape[1]), np.nan, dtype=np.float32)
    embeddings[positions] = vectors
    full_scores[positions] = scores
    return embeddings, full_scores


def encoded_rows(embeddings: np.ndarray) -> np.ndarray:
    """Mask of the rows an ``embed_rows`` array holds."""
    return ~np.isnan(embeddings[:, 0])


def predictions(scores: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Predicted category and its score for each row of a score matrix."""
    best = scores.argmax(axis=1)
    return pd.DataFrame(
        {
            "predicted": np.asarray(labels, dtype=object)[best],
            "score": scores[np.arange(len(scores)), best].astype(float),
        }
    )


def top_k(scores: np.ndarray, labels: list[str], k: int = 3) -> pd.DataFrame:
    """The k best categories per row as ``category 1``, ``score 1``, …, for explorer tables."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    columns: dict[str, list] = {}
    for rank in range(k):
        columns[f"category {rank + 1}"] = [labels[i] for i in order[:, rank]]
        columns[f"score {rank + 1}"] = scores[np.arange(len(scores)), order[:, rank]].astype(float)
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- sampling and UMAP


def sample_points(frame: pd.DataFrame, max_points: int | None, seed: int = 42) -> np.ndarray:
    """Positions of a stratified sample of at most ``max_points`` rows (all rows if fewer).

    UMAP and the browser both slow down with size; a stratified sample keeps every category's
    share, so the map's picture stays true while its cost stays bounded.
    """
    positions = np.arange(len(frame))
    if not max_points or len(frame) <= max_points:
        return positions
    from sklearn.model_selection import train_test_split

    counts = frame["label"].value_counts()
    stratify = frame["label"] if counts.min() >= 2 else None
    kept, _ = train_test_split(
        positions, train_size=int(max_points), stratify=stratify, random_state=seed
    )
    return np.sort(kept)


def reduce(
    embeddings: np.ndarray,
    n_components: int = 2,
    seed: int = 42,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> np.ndarray:
    """UMAP with the cosine metric and a fixed seed: the same data gives the same map."""
    import warnings

    import umap  # heavy (numba compile): only the maps need it

    n = len(embeddings)
    if n < 4:
        return np.zeros((n, n_components), dtype=np.float32)
    reducer = umap.UMAP(
        n_components=n_components,
        metric="cosine",
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist,
        random_state=seed,
        init="spectral" if n > n_components + 8 else "random",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # random_state forces 1 job
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        return reducer.fit_transform(np.asarray(embeddings, dtype=np.float32)).astype(np.float32)


def place_on_map(
    vectors: np.ndarray, embeddings: np.ndarray, coords: np.ndarray, k: int = 15
) -> np.ndarray:
    """Map positions for new vectors (category names): the similarity-weighted mean position
    of their ``k`` most similar tickets.

    This is how UMAP's ``transform`` initialises new points, without its extra optimisation
    (and its JIT compilation, ~20 s per process); names do not bend the map of the tickets.
    """
    k = max(1, min(k, len(embeddings)))
    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(embeddings, dtype=np.float32).T
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    weights = np.clip(np.take_along_axis(sims, nearest, axis=1), 1e-6, None)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, coords[nearest]).astype(np.float32)


@dataclass
class EmbeddingMap:
    """One model's map of the sampled tickets, its category-name markers and its predictions."""

    title: str
    coords: np.ndarray  # (n_points, 2 or 3)
    name_coords: np.ndarray  # (n_labels, 2 or 3)
    predicted: np.ndarray  # (n_points,) category names
    score: np.ndarray  # (n_points,)
    names: list[str] = field(default_factory=list)  # category of each name marker


def build_map(
    title: str,
    embeddings: np.ndarray,
    name_embeddings: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    n_components: int = 2,
    seed: int = 42,
    n_neighbors: int = 15,
) -> EmbeddingMap:
    """Map the tickets, then place the category names among their most similar tickets.

    ``name_embeddings`` and the columns of ``scores`` follow the order of ``labels``.
    """
    coords = reduce(embeddings, n_components=n_components, seed=seed, n_neighbors=n_neighbors)
    name_coords = place_on_map(name_embeddings, embeddings, coords, k=n_neighbors)
    predicted = predictions(scores, labels)
    return EmbeddingMap(
        title=title,
        coords=coords,
        name_coords=name_coords,
        predicted=predicted["predicted"].to_numpy(),
        score=predicted["score"].to_numpy(),
        names=list(labels),
    )


# --------------------------------------------------------------------------- figures


def wrap(escaped: str, width: int = 80) -> str:
    """Break an escaped hover text into lines (plotly never wraps hover labels)."""
    import textwrap

    return "<br>".join(textwrap.wrap(escaped, width, break_long_words=False)) or escaped


def hover_limit_for(n_points: int) -> int:
    """Characters of ticket text per hover: shorter on big maps, where text dominates page size."""
    return 160 if n_points <= 5000 else 100


def map_figure(
    points: pd.DataFrame,
    maps: list[EmbeddingMap],
    labels: list[str],
    title: str = "Ticket embeddings (UMAP)",
    svg_max_points: int = SVG_MAX_POINTS,
    hover_limit: int | None = None,
    height: int = 600,
) -> go.Figure:
    """Maps side by side, with buttons to colour points by true or predicted category or by
    correct/incorrect.

    One trace per (true, predicted) category pair: the pair and the colours of every view are
    per trace, so the buttons restyle a handful of values instead of per-point arrays and each
    point carries only its coordinates, score and escaped text (big maps stay small in the
    HTML). Legend clicks on a category hide it in every map. Up to ``svg_max_points`` points
    per map are SVG (drawn even without a GPU); above it WebGL keeps the browser responsive.
    """
    from plotly.subplots import make_subplots

    labels = sorted(labels)
    style = _MapStyle.of(points, maps, labels, svg_max_points, hover_limit)
    fig = make_subplots(
        rows=1,
        cols=len(maps),
        subplot_titles=[escape_label(m.title) for m in maps],
        specs=[[{"type": "scene"} if style.three_d else {"type": "xy"} for _ in maps]],
        horizontal_spacing=0.04,
    )
    for column, emap in enumerate(maps, start=1):
        _add_point_traces(fig, style, emap, column, labels)
        _add_name_trace(fig, style, emap, column)
    _add_view_keys(fig, style, labels)
    _map_layout(fig, style, title, height)
    return fig


@dataclass
class _MapStyle:
    """What every trace of a map figure shares, and the per-view style of each trace so far:
    ``views[view]`` is one (colour, size, showlegend, visible) per trace, in trace order."""

    plan: LegendPlan
    three_d: bool
    point_trace: type
    name_trace: type
    true: np.ndarray
    texts: np.ndarray
    size: int
    name_size: int
    views: dict[str, list[tuple]] = field(default_factory=lambda: {view: [] for view in VIEWS})
    in_legend: set[str] = field(default_factory=set)  # entries shown (grouped ones share one)

    @classmethod
    def of(cls, points, maps, labels, svg_max_points, hover_limit) -> _MapStyle:
        support = points["label"].value_counts().reindex(labels).fillna(0)
        three_d = bool(maps) and maps[0].coords.shape[1] == 3
        n = len(points)
        webgl = three_d or n > svg_max_points  # Scatter3d is WebGL; Scattergl only when large
        limit = hover_limit or hover_limit_for(n)
        return cls(
            plan=legend_plan(support),
            three_d=three_d,
            point_trace=go.Scatter3d if three_d else (go.Scattergl if webgl else go.Scatter),
            name_trace=go.Scatter3d if three_d else go.Scatter,
            true=points["label"].to_numpy(),
            texts=np.asarray([wrap(t) for t in hover_text(points["text"], limit)], dtype=object),
            size=3 if three_d else (4 if n > 3000 else 6),
            name_size=8 if three_d else 13,
        )

    def xyz(self, coords: np.ndarray) -> dict[str, np.ndarray]:
        xyz = {"x": coords[:, 0], "y": coords[:, 1]}
        if self.three_d:
            xyz["z"] = coords[:, 2]
        return xyz


def _add_point_traces(
    fig: go.Figure, style: _MapStyle, emap: EmbeddingMap, column: int, labels: list[str]
) -> None:
    """One trace per (true, predicted) pair of this map, with its style in every view."""
    colors, size = style.plan.colors, style.size
    for label in labels:
        in_label = style.true == label
        entry = style.plan.entries[label]
        first = column == 1 and entry not in style.in_legend
        for predicted in sorted(set(emap.predicted[in_label])):
            mask = in_label & (emap.predicted == predicted)
            right = predicted == label
            pair = (
                f"<b>{escape_label(label)}</b> → {escape_label(str(predicted))} "
                f"{'✓' if right else '✗'}"
            )
            fig.add_trace(
                style.point_trace(
                    **style.xyz(emap.coords[mask]),
                    mode="markers",
                    name=entry,
                    legendgroup=entry,
                    legendrank=1 + style.plan.ranks[label],  # biggest first, "other" last
                    showlegend=first,
                    marker={"color": colors[label], "size": size, "opacity": 0.8},
                    text=style.texts[mask].tolist(),
                    customdata=emap.score[mask].astype(np.float32),
                    hovertemplate=pair + " (score %{customdata:.2f})<br>%{text}<extra></extra>",
                    hoverlabel={"align": "left"},
                ),
                row=1,
                col=column,
            )
            style.views["true category"].append((colors[label], size, first, True))
            if first:
                style.in_legend.add(entry)
            style.views["predicted category"].append(
                (colors.get(predicted, "#444444"), size, False, True)
            )
            style.views["correct / incorrect"].append(
                (
                    CORRECT_COLOR if right else INCORRECT_COLOR,
                    size if right else size + 2,
                    False,
                    True,
                )
            )
            first = False


def _add_name_trace(fig: go.Figure, style: _MapStyle, emap: EmbeddingMap, column: int) -> None:
    """The category names of one map: diamonds (and, in 2-D, annotations above the points)."""
    three_d = style.three_d
    name_colors = [style.plan.colors.get(label, "#444444") for label in emap.names]
    fig.add_trace(
        style.name_trace(
            **style.xyz(emap.name_coords),
            mode="markers+text" if three_d else "markers",
            name="category names",
            legendgroup="category names",
            showlegend=column == 1,
            text=[f"<b>{escape_label(label)}</b>" for label in emap.names],
            textposition="top center",
            textfont={"size": 12, "color": "#102a43"},
            marker={
                "symbol": "diamond",
                "size": style.name_size,
                "color": name_colors,
                "line": {"color": "#102a43", "width": 1.5},
            },
            hovertext=[f"category name: {escape_label(label)}" for label in emap.names],
            hoverinfo="text",
            **({} if three_d else {"cliponaxis": False}),
        ),
        row=1,
        col=column,
    )
    if not three_d:  # annotations stay above a WebGL canvas, trace text would not
        axis = "" if column == 1 else str(column)
        for label, (x, y) in zip(emap.names, emap.name_coords[:, :2], strict=True):
            if label in style.plan.grouped:  # 50 overlapping names hide the map: hover names them
                continue
            fig.add_annotation(
                x=float(x),
                y=float(y),
                xref=f"x{axis}",
                yref=f"y{axis}",
                text=f"<b>{style.plan.entries.get(label, escape_label(label))}</b>",
                showarrow=False,
                yshift=14,
                font={"size": 12, "color": "#102a43"},
                bgcolor="rgba(255,255,255,0.75)",
            )
    for view in VIEWS:
        style.views[view].append((name_colors, style.name_size, column == 1, True))


def _add_view_keys(fig: go.Figure, style: _MapStyle, labels: list[str]) -> None:
    """Legend-only keys for the recoloured views (no data: nothing is duplicated)."""
    plan = style.plan
    keyed = [label for label in labels if label not in plan.grouped]
    keyed = sorted(keyed, key=lambda label: plan.ranks[label])
    grouped_key = (
        [(f"predicted: {plan.entries[plan.grouped[0]]}", OTHER_COLOR)] if plan.grouped else []
    )
    key_traces = [(f"predicted: {plan.entries[label]}", plan.colors[label]) for label in keyed] + [
        *grouped_key,
        ("correct", CORRECT_COLOR),
        ("incorrect", INCORRECT_COLOR),
    ]
    for name, color in key_traces:
        empty = {"x": [None], "y": [None]}
        if style.three_d:
            empty["z"] = [None]
        fig.add_trace(
            style.name_trace(
                **empty,
                mode="markers",
                name=name,
                marker={"color": color, "size": 9},
                visible=False,
                showlegend=True,
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
        predicted_key = name.startswith("predicted:")
        for view in VIEWS:
            shown = (view == "predicted category" and predicted_key) or (
                view == "correct / incorrect" and not predicted_key
            )
            style.views[view].append((color, 9, True, shown))


def _map_layout(fig: go.Figure, style: _MapStyle, title: str, height: int) -> None:
    """Title, legend and the view buttons (each restyles every trace's colour/size/visibility)."""
    buttons = []
    for view in VIEWS:
        styles = style.views[view]
        buttons.append(
            {
                "label": view,
                "method": "restyle",
                "args": [
                    {
                        "marker.color": [s[0] for s in styles],
                        "marker.size": [s[1] for s in styles],
                        "showlegend": [s[2] for s in styles],
                        "visible": [s[3] for s in styles],
                    }
                ],
            }
        )
    fig.update_layout(
        title={"text": title, "y": 0.98, "yanchor": "top"},
        height=height,
        legend={"itemsizing": "constant", "title": {"text": "colour"}},
        hovermode="closest",
        margin={"t": 120},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "xanchor": "left",
                "y": 1.07,
                "yanchor": "bottom",
                "showactive": True,
                "buttons": buttons,
            }
        ],
    )
    if not style.three_d:
        fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
        fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)


def map_note(drawn: int, tickets: int, max_points: int, svg_max_points: int) -> str:
    """How the map was drawn: sample or every ticket, renderer, markers, hover and legend."""
    renderer = "WebGL" if drawn > svg_max_points else "SVG"
    return (
        (
            f"All {tickets} tickets are drawn"
            if drawn == tickets
            else f"{drawn} of {tickets} tickets are drawn: a stratified sample (umap_max_points "
            f"{max_points}) keeps each category's share while bounding UMAP time and page size"
        )
        + f"; {renderer} rendering. Diamonds are the category texts embedded by each model. "
        f"Hover a point for true → predicted category, score and the ticket (first "
        f"{hover_limit_for(drawn)} characters); click a legend entry to hide a category."
    )


def points_drawn(fig: go.Figure) -> int:
    """Ticket points in a map figure's first map (category traces only), for checks and notes."""
    first_axis = [
        t
        for t in fig.data
        if t.legendgroup not in (None, "category names")
        and (
            getattr(t, "xaxis", None) in (None, "x")
            and getattr(t, "scene", None) in (None, "scene")
        )
        and t.x is not None
        and not (len(t.x) == 1 and t.x[0] is None)
    ]
    return int(sum(len(t.x) for t in first_axis))


# --------------------------------------------------------------------------- cluster quality


def class_silhouettes(
    embeddings: np.ndarray,
    labels: pd.Series | np.ndarray,
    max_points: int | None = 5000,
    seed: int = 42,
) -> pd.Series:
    """Mean silhouette per class in the original space (cosine): how well each class separates.

    Silhouette needs all pairwise distances, so above ``max_points`` a stratified sample is
    used; the same seed picks the same tickets for every model, so before/after is comparable.
    """
    from sklearn.metrics import silhouette_samples

    labels = pd.Series(np.asarray(labels)).reset_index(drop=True)
    keep = sample_points(pd.DataFrame({"label": labels}), max_points, seed)
    values = silhouette_samples(embeddings[keep], labels.iloc[keep].to_numpy(), metric="cosine")
    per_class = pd.Series(values.astype(np.float64)).groupby(labels.iloc[keep].to_numpy()).mean()
    per_class.loc["all"] = float(np.mean(values))
    per_class.index.name = "category"
    return per_class.rename("silhouette")


def silhouette_table(per_model: dict[str, pd.Series]) -> pd.DataFrame:
    """Per-class silhouette of each model, plus the change from the first to the last model."""
    table = pd.DataFrame(per_model).astype(np.float64)
    if len(per_model) > 1:
        first, last = list(per_model)[0], list(per_model)[-1]
        table["change"] = table[last] - table[first]
    return table


def silhouette_figure(
    table: pd.DataFrame, title: str = "Cluster quality per category"
) -> go.Figure:
    """Grouped bars of per-class silhouette, one bar per model."""
    models = [c for c in table.columns if c != "change"]
    shades = ["#9aa5b1", "#1f4e79", "#2f855a", "#b7791f"]
    fig = go.Figure()
    for i, model in enumerate(models):
        fig.add_trace(
            go.Bar(
                x=[escape_label(str(c)) for c in table.index],
                y=table[model].to_numpy(),
                name=escape_label(str(model)),
                marker_color=shades[i % len(shades)],
                hovertemplate="%{x}<br>silhouette %{y:.3f}<extra>"
                + escape_label(model)
                + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis_title="mean silhouette (cosine)",
        height=380,
        legend={"orientation": "h", "y": 1.1},
    )
    return fig


def silhouette_note(held_out: int, max_points: int) -> str:
    """What the silhouette table measures, on which tickets."""
    return (
        "Silhouette from -1 to 1: how much closer a ticket is to its own category than to the "
        f"nearest other one. Computed on held-out tickets only ({held_out}"
        + (f", sampled to {max_points}" if held_out > max_points else "")
        + "), since the fine-tuned model has seen the training tickets."
    )
