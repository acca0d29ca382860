"""Reviewing suspect labels in JupyterLab: candidates, a widget that records decisions, export.

The candidates are the tickets cleanlab flags on out-of-fold probabilities (the label page's
check, ``workbench.label_issues``), worst label quality first, each with the top three categories of
those probabilities and its nearest tickets (cosine on the same TF-IDF features, itself left out).
:class:`ReviewWidget` pages through them (buttons, or keys through ``ipyevents``: :data:`KEYS`
and the digits); every *keep*, *relabel as …* or *drop* is appended at once, atomically, to
a corrections CSV (``workbench.corrections``: the schema ``workbench report --corrections``
reads), so a crashed kernel loses nothing already clicked, and a new
widget on the same file carries on where the last one stopped. *skip* records nothing.
:func:`export_candidates` writes the same candidates for review in a spreadsheet; the file comes
back as corrections as it is (rows left without a decision are ignored).

:class:`ExplainWidget` is the other direction: type a ticket, see what the model decides and
why (``workbench.explain``), with the deciding words marked in the text.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.classifier import Classifier, load_classifier, predictions_frame
from workbench.corrections import COLUMNS, append_row, ticket_hashes
from workbench.explain import explain_tickets, nearest_training
from workbench.label_issues import find_label_issues, out_of_sample_probabilities, text_features
from workbench.routing import add_columns, confidences, read_routing
from workbench.runinfo import now_iso

REVIEWER_ENV = "WORKBENCH_REVIEWER"
# Keyboard shortcuts: one letter per decision, and the digits 1–9 relabel at once as the first
# nine categories in the "new label" list (so r and a digit never mean two things).
KEYS = {"k": "keep", "d": "drop", "s": "skip", "r": "relabel"}
CONTEXT = ("suggested", "quality", "top3", "neighbours", "text")


def review_candidates(
    frame: pd.DataFrame,
    classes: list[str],
    limit: int = 400,
    folds: int = 5,
    seed: int = 42,
    neighbours: int = 3,
) -> pd.DataFrame:
    """The ``limit`` worst-quality label-issue candidates of ``frame`` (``text``, ``label``):
    the corrections columns (``text_hash``, ``old_label``; the decision left empty) and the
    context a reviewer needs (``suggested``, ``quality``, ``top3`` and ``neighbours`` as JSON)."""
    features = text_features(frame["text"])
    probabilities = out_of_sample_probabilities(features, frame["label"], classes, folds, seed)
    issues = find_label_issues(frame, probabilities, classes).head(limit)
    positions = issues["position"].to_numpy()
    names = np.asarray(classes, dtype=object)
    best = np.argsort(-probabilities[positions], axis=1)[:, :3]
    top3 = [
        json.dumps([[str(names[j]), round(float(probabilities[p, j]), 4)] for j in row])
        for p, row in zip(positions, best, strict=True)
    ]
    table = pd.DataFrame({column: "" for column in COLUMNS}, index=range(len(issues)))
    table["text_hash"] = ticket_hashes(issues["text"])
    table["old_label"] = issues["given"].to_numpy()
    table["suggested"] = issues["suggested"].to_numpy()
    table["quality"] = issues["quality"].to_numpy()
    table["top3"] = top3
    table["neighbours"] = _neighbour_lists(features, frame, positions, neighbours)
    table["text"] = issues["text"].to_numpy()
    return table


def _neighbour_lists(features, frame: pd.DataFrame, positions: np.ndarray, k: int) -> list[str]:
    """The ``k`` nearest other tickets of each candidate, as JSON [text, label, cosine]."""
    if not len(positions):
        return []
    indices, sims = nearest_training(features[positions], features, k + 1)
    texts, labels = frame["text"].to_numpy(), frame["label"].to_numpy()
    lists = []
    for position, row, sim in zip(positions, indices, sims, strict=True):
        kept = [(j, s) for j, s in zip(row, sim, strict=True) if j != position][:k]
        lists.append(
            json.dumps(
                [[str(texts[j]), str(labels[j]), round(float(s), 4)] for j, s in kept],
                ensure_ascii=False,
            )
        )
    return lists


def export_candidates(candidates: pd.DataFrame, path: str | Path) -> Path:
    """The candidates as a CSV for spreadsheet review: fill ``decision`` (keep, relabel, drop)
    and ``new_label``, then pass the file to ``--corrections`` as it is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidates[[*COLUMNS, *CONTEXT]].to_csv(path, index=False)
    return path


def reviewed_hashes(path: str | Path) -> set[str]:
    """Ticket hashes that already have a decision in a corrections file (none: no file)."""
    path = Path(path)
    if not path.exists() or not path.stat().st_size:
        return set()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    decided = table[table["decision"].str.strip() != ""]
    return set(decided["text_hash"].str.strip().str.lower())


class ReviewWidget:
    """Pages through review candidates; each decision is appended to ``corrections`` at once."""

    def __init__(
        self,
        candidates: pd.DataFrame,
        corrections: str | Path,
        labels: list[str] | None = None,
        reviewer: str | None = None,
        run: str = "",
    ) -> None:
        import ipywidgets as widgets

        self.candidates = candidates.reset_index(drop=True)
        self.path = Path(corrections)
        self.run = run
        self.reviewed = reviewed_hashes(self.path) & set(self.candidates["text_hash"])
        labels = labels or sorted(
            set(self.candidates["old_label"]) | set(self.candidates["suggested"])
        )
        self.reviewer = widgets.Text(
            value=reviewer if reviewer is not None else os.environ.get(REVIEWER_ENV, ""),
            description="reviewer",
        )
        self.progress = widgets.Label()
        self.ticket = widgets.HTML()
        self.target = widgets.Dropdown(options=labels, description="new label")
        self.buttons = {
            name: widgets.Button(description=text, button_style=style)
            for name, text, style in (
                ("keep", "keep", "success"),
                ("relabel", "relabel as …", "warning"),
                ("drop", "drop", "danger"),
                ("skip", "skip", ""),
            )
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: self.decide(name))
        self.keys = self._key_events()
        self.help = widgets.HTML(key_help(list(self.target.options)))
        self.position = self._next_open(0)
        self.box = widgets.VBox(
            [
                widgets.HBox([self.progress, self.reviewer]),
                self.ticket,
                widgets.HBox([*self.buttons.values(), self.target]),
                self.help,
            ]
        )
        self.render()

    def _key_events(self):
        """Key presses over the ticket panel only: ipyevents takes every key while the pointer is
        over its widget, so the reviewer field and the label list keep their typing."""
        from ipyevents import Event

        events = Event(source=self.ticket, watched_events=["keydown"])
        events.on_dom_event(self._on_key)
        return events

    def _on_key(self, event: dict) -> None:
        if event.get("type") != "keydown" or any(
            event.get(m) for m in ("ctrlKey", "altKey", "metaKey")
        ):
            return
        self.press(str(event.get("key", "")))

    def press(self, key: str) -> None:
        """A shortcut: the same decision as its button (unknown keys do nothing)."""
        options = list(self.target.options)
        if key.isdigit() and 1 <= int(key) <= min(9, len(options)):
            self.target.value = options[int(key) - 1]
            self.decide("relabel")
        elif key.lower() in KEYS:
            self.decide(KEYS[key.lower()])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    @property
    def current(self) -> pd.Series | None:
        """The candidate on screen (None: every candidate is reviewed)."""
        return self.candidates.iloc[self.position] if self.position < len(self.candidates) else None

    def decide(self, decision: str) -> None:
        """Record ``decision`` for the ticket on screen (``skip`` records nothing), then move on."""
        row = self.current
        if row is None:
            return
        if decision != "skip":
            append_row(
                self.path,
                {
                    "text_hash": row["text_hash"],
                    "decision": decision,
                    "new_label": self.target.value if decision == "relabel" else "",
                    "old_label": row["old_label"],
                    "reviewer": self.reviewer.value.strip(),
                    "time": now_iso(),
                    "run": self.run,
                },
            )
            self.reviewed.add(row["text_hash"])
        self.position = self._next_open(self.position + 1)
        self.render()

    def _next_open(self, start: int) -> int:
        hashes = self.candidates["text_hash"].tolist()
        for position in range(start, len(hashes)):
            if hashes[position] not in self.reviewed:
                return position
        return len(hashes)

    def render(self) -> None:
        """The progress line and the ticket on screen: escaped text, labels, top three, neighbours."""
        self.progress.value = f"{len(self.reviewed)} of {len(self.candidates)} reviewed"
        row = self.current
        for button in self.buttons.values():
            button.disabled = row is None
        if row is None:
            self.ticket.value = "<p>Every candidate is reviewed.</p>"
            return
        if row["suggested"] in self.target.options:
            self.target.value = row["suggested"]
        self.ticket.value = candidate_html(row)


def key_help(labels: list[str]) -> str:
    """The help line: which key does what (digits: the first nine categories, in list order)."""
    digits = " · ".join(f"<b>{i}</b> {html.escape(label)}" for i, label in enumerate(labels[:9], 1))
    return (
        "<small>Keys, with the pointer over the ticket: <b>k</b> keep · <b>d</b> drop · "
        "<b>s</b> skip · <b>r</b> relabel as the chosen label · relabel at once as "
        f"{digits}</small>"
    )


def candidate_html(row: pd.Series) -> str:
    """One candidate as HTML: every piece of ticket text escaped."""
    escape = html.escape
    top3 = ", ".join(f"{escape(label)} {p:.0%}" for label, p in json.loads(row["top3"]))
    neighbours = "".join(
        f"<li><b>{escape(label)}</b> ({cosine:.2f}): {escape(text[:300])}</li>"
        for text, label, cosine in json.loads(row["neighbours"])
    )
    return (
        f"<p><b>given:</b> {escape(str(row['old_label']))} · <b>top 3 (cross-validated TF-IDF):</b> {top3} · "
        f"<b>label quality:</b> {float(row['quality']):.3f}</p>"
        f"<pre style='white-space: pre-wrap'>{escape(str(row['text']))}</pre>"
        f"<p>nearest tickets:</p><ul>{neighbours}</ul>"
    )


class ExplainWidget:
    """Type a ticket, see its category, route, candidates, the terms that decided it
    (highlighted in the text) and its nearest training tickets (``workbench.explain``)."""

    def __init__(self, model: str | Path | Classifier) -> None:
        import ipywidgets as widgets

        self.classifier = model if isinstance(model, Classifier) else load_classifier(model)
        self.classifier.cache = False  # typed tickets stay out of the embedding cache
        self.operating = read_routing(self.classifier.path)
        self.text = widgets.Textarea(placeholder="a ticket", layout={"width": "100%"})
        self.button = widgets.Button(description="explain", button_style="primary")
        self.result = widgets.HTML()
        self.button.on_click(lambda _button: self.explain())
        self.box = widgets.VBox([self.text, self.button, self.result])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def explain(self) -> pd.Series | None:
        """Score the typed ticket and show why; returns its explained prediction row."""
        text = self.text.value
        if not text.strip():
            self.result.value = "<p>Type a ticket first.</p>"
            return None
        scores = self.classifier.scores([text])
        table = predictions_frame([text], scores, self.classifier.labels)
        probabilities = confidences(self.classifier, [text], scores)
        table = add_columns(table, probabilities, self.operating, self.classifier.labels)
        explained = explain_tickets(self.classifier, [text], table["predicted"].tolist())
        row = pd.concat([table, explained], axis=1).iloc[0]
        self.result.value = explanation_html(row)
        return row


def explanation_html(row: pd.Series) -> str:
    """An explained prediction as HTML: the ticket (escaped) with its top words marked, the
    category, route, candidates, the decision's parts and the neighbours."""
    terms = json.loads(row["explain_terms"])
    words = [name[6:-1] for name, _ in terms if name.startswith('word "')]
    neighbours = json.loads(row["nearest_training"] or "[]")
    listed = "".join(
        f"<li><b>{html.escape(n['label'])}</b> ({n['cosine']:.2f}): {html.escape(n['text'][:300])}</li>"
        for n in neighbours
    )
    return (
        f"<p><b>{html.escape(str(row['predicted']))}</b> ({float(row['score']):.0%}) · route "
        f"<b>{html.escape(str(row['route']))}</b> · candidates {html.escape(str(row['candidates']))}</p>"
        f"<pre style='white-space: pre-wrap'>{highlighted(str(row['text']), words)}</pre>"
        f"<p>{html.escape(str(row['explanation']))}</p>"
        + (f"<p>nearest training tickets:</p><ul>{listed}</ul>" if listed else "")
    )


def highlighted(text: str, words: list[str]) -> str:
    """``text`` escaped, with each of ``words`` (TF-IDF word terms, lower case) marked where it
    occurs as a whole word, ignoring case."""
    if not words:
        return html.escape(text)
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )
    pieces, last = [], 0
    for match in pattern.finditer(text):
        pieces.append(html.escape(text[last : match.start()]))
        pieces.append(f"<mark>{html.escape(match.group(0))}</mark>")
        last = match.end()
    pieces.append(html.escape(text[last:]))
    return "".join(pieces)
