"""The explorer: static stand-in in reports (no widget output), working widgets otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from ties import assert_top_k

from workbench import interactive, maps
from workbench.data import load_tickets

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def explorer_inputs(small_sample):
    frame = load_tickets(small_sample).frame.head(120).reset_index(drop=True)
    labels = sorted(load_tickets(small_sample).labels)
    base = maps.load_base("sentence-transformers/all-MiniLM-L6-v2", labels, max_seq_length=64)
    embeddings = base.embed(frame["text"])
    scores = base.scores_from_embeddings(embeddings)
    emap = maps.build_map("base", embeddings, base.label_vectors(), scores, labels)
    return frame, labels, base, emap


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def test_headless_shows_static_table_and_no_widget(explorer_inputs, shell, monkeypatch):
    from IPython.utils.capture import capture_output

    frame, labels, base, emap = explorer_inputs
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    examples = ["laptop screen cracked <script>alert(1)</script>", "need access to the vpn"]
    with capture_output() as captured:
        result = interactive.show_explorer(frame, [emap], labels, base.scores, examples)
    assert result is None
    bundles = [output.data for output in captured.outputs]
    assert bundles and not any(WIDGET_MIME in bundle for bundle in bundles)
    page = "".join(bundle.get("text/html", "") for bundle in bundles)
    assert "category 1" in page and "score 3" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_widget_filters_searches_and_classifies(explorer_inputs, shell, monkeypatch):
    import ipywidgets as widgets
    from IPython.utils.capture import capture_output

    frame, labels, base, emap = explorer_inputs
    monkeypatch.delenv("WORKBENCH_HEADLESS", raising=False)
    with capture_output() as captured:
        box = interactive.show_explorer(frame, [emap], labels, base.scores, [])
    assert isinstance(box, widgets.VBox)
    assert any(WIDGET_MIME in output.data for output in captured.outputs)
    parts = box._workbench_parts
    assert f"<b>{len(frame)}</b> of {len(frame)}" in parts["count"].value

    word = frame["text"].iat[0].split()[0]
    expected = interactive.search(frame, word, labels)
    parts["query"].value = word
    assert f"<b>{int(expected.sum())}</b> of" in parts["count"].value
    one = [labels[0]]
    parts["categories"].value = tuple(one)
    both = interactive.search(frame, word, one)
    assert f"<b>{int(both.sum())}</b> of" in parts["count"].value
    assert (frame["label"][both] == labels[0]).all()


def test_classify_button_pressed_shows_top_categories(explorer_inputs, shell, monkeypatch):
    """Type a ticket, press the real button: the top 3 categories appear, text escaped."""
    import ipywidgets as widgets
    from IPython.utils.capture import capture_output

    frame, labels, base, emap = explorer_inputs
    monkeypatch.delenv("WORKBENCH_HEADLESS", raising=False)
    with capture_output():
        box = interactive.show_explorer(frame, [emap], labels, base.scores, [])
    parts = box._workbench_parts
    button = parts["button"]
    assert isinstance(button, widgets.Button) and button.description == "classify"

    with capture_output() as empty:
        button.click()  # nothing typed yet
    assert "Type a ticket first." in "".join(o.data.get("text/html", "") for o in empty.outputs)

    typed = "my laptop screen is cracked and the keyboard <b>does not</b> work"
    parts["ticket"].value = typed
    with capture_output() as pressed:
        button.click()
    page = "".join(o.data.get("text/html", "") for o in pressed.outputs)
    assert "Top 3 categories" in page
    shown = [
        label for _, label in sorted((page.index(f">{x}<"), x) for x in labels if f">{x}<" in page)
    ]
    assert len(shown) == 3
    # shown in score order: the three best categories, ties (within 1e-5) in either order
    scores = base.scores([typed])
    chosen = np.array([[labels.index(label) for label in shown]])
    assert_top_k(chosen, np.take_along_axis(scores, chosen, axis=1), scores)
    assert "&lt;b&gt;does not&lt;/b&gt;" in page and "<b>does not</b>" not in page


def test_classify_table_top3_matches_scores(explorer_inputs):
    _, labels, base, _ = explorer_inputs
    texts = ["my laptop screen is broken", "please grant me access to the shared drive"]
    table = interactive.classify_table(texts, base.scores, labels)
    scores = base.scores(texts)
    assert table.columns.tolist()[:3] == ["ticket", "category 1", "score 1"]
    for i in range(len(texts)):
        # the three best categories by the scores, best first; ties (1e-5) in either order
        shown = table.iloc[i][["category 1", "category 2", "category 3"]].tolist()
        chosen = np.array([[labels.index(label) for label in shown]])
        values = table.iloc[i][["score 1", "score 2", "score 3"]].to_numpy(float)[None]
        assert_top_k(chosen, values, scores[i : i + 1])
        assert table.iloc[i]["score 1"] >= table.iloc[i]["score 2"] >= table.iloc[i]["score 3"]


def test_search_needs_every_word():
    import pandas as pd

    frame = pd.DataFrame({"text": ["vpn broken", "vpn ok", "printer"], "label": ["A", "B", "A"]})
    assert interactive.search(frame, "VPN broken").tolist() == [True, False, False]
    assert interactive.search(frame, "", ["A"]).tolist() == [True, False, True]
