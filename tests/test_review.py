"""The review widget driven through real ipywidgets events: decisions reach the corrections
file at once, survive a crash, and come back as corrections; the spreadsheet export too."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.corrections import read_corrections
from workbench.data import load_tickets, split_tickets
from workbench.review import ReviewWidget, export_candidates, review_candidates

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def candidates(small_sample):
    train = split_tickets(load_tickets(small_sample)).train
    labels = sorted(train["label"].unique())
    return review_candidates(train, labels, limit=12), labels, train


def test_candidates_carry_the_schema_and_the_context(candidates):
    table, labels, train = candidates
    again = review_candidates(train, labels, limit=12)  # the same tickets every time
    assert again["text_hash"].tolist() == table["text_hash"].tolist()
    assert 3 < len(table) <= 12
    assert table["quality"].is_monotonic_increasing  # worst label first
    texts = set(train["text"])
    for _, row in table.iterrows():
        top3 = json.loads(row["top3"])
        assert len(top3) == 3 and all(label in labels for label, _ in top3)
        neighbours = json.loads(row["neighbours"])
        assert len(neighbours) == 3
        assert all(text in texts and text != row["text"] for text, _, _ in neighbours)


def test_three_clicks_survive_a_crash_and_read_back_as_corrections(
    candidates, tmp_path, small_sample, monkeypatch
):
    table, labels, train = candidates
    monkeypatch.setenv("WORKBENCH_REVIEWER", "ana")
    path = tmp_path / "corrections.csv"
    widget = ReviewWidget(table, path, labels=labels, run="run-1")
    assert widget.progress.value == f"0 of {len(table)} reviewed"
    assert "<script" not in widget.ticket.value
    first, second, third = (table.loc[i, "text_hash"] for i in range(3))
    widget.buttons["keep"].click()
    other = next(label for label in labels if label != table.loc[1, "old_label"])
    widget.target.value = other
    widget.buttons["relabel"].click()
    widget.buttons["skip"].click()  # the fourth candidate: nothing recorded
    widget.reviewer.value = "bo"
    widget.buttons["drop"].click()
    fourth = table.loc[3, "text_hash"]
    assert widget.progress.value == f"3 of {len(table)} reviewed"
    del widget  # the kernel dies: only the file remains

    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert written["text_hash"].tolist() == [first, second, fourth]
    assert written["decision"].tolist() == ["keep", "relabel", "drop"]
    assert written["reviewer"].tolist() == ["ana", "ana", "bo"]
    assert written.loc[1, "new_label"] == other and written["run"].eq("run-1").all()
    assert third not in set(written["text_hash"])

    again = ReviewWidget(table, path, labels=labels)
    assert again.progress.value == f"3 of {len(table)} reviewed"
    assert again.current["text_hash"] == third  # the skipped one comes back first
    corrections = read_corrections(path)
    assert corrections.rows == 3
    split = split_tickets(load_tickets(small_sample, corrections=path))
    assert (split.corrections["kept"], split.corrections["relabelled"]) == (1, 1)
    assert split.corrections["dropped"] == 1


def _key(widget: ReviewWidget, key: str, **modifiers: bool) -> None:
    """A key press as the browser sends it: an ipyevents custom message into the widget's
    ``_handle_msg``, which dispatches it to the registered DOM-event handlers."""
    content = {"type": "keydown", "key": key, "code": f"Key{key.upper()}", "repeat": False}
    content |= {m: modifiers.get(m, False) for m in ("altKey", "ctrlKey", "metaKey", "shiftKey")}
    widget.keys._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


def test_key_presses_record_the_same_decisions_as_the_buttons(candidates, tmp_path):
    """k, r, a digit, s and d through ipyevents write what keep, relabel, relabel, skip and drop
    clicks write; a key with Ctrl and an unknown key record nothing."""
    table, labels, _ = candidates
    clicked = ReviewWidget(table, tmp_path / "clicked.csv", labels=labels, reviewer="ana")
    pressed = ReviewWidget(table, tmp_path / "pressed.csv", labels=labels, reviewer="ana")
    assert pressed.keys.source is pressed.ticket and pressed.keys.watched_events == ["keydown"]
    assert "<b>k</b> keep" in pressed.help.value and f"<b>2</b> {labels[1]}" in pressed.help.value
    other = labels[-1]
    clicked.buttons["keep"].click()
    clicked.target.value = other
    clicked.buttons["relabel"].click()
    clicked.target.value = labels[1]
    clicked.buttons["relabel"].click()
    clicked.buttons["skip"].click()
    clicked.buttons["drop"].click()
    _key(pressed, "k")
    _key(pressed, "d", ctrlKey=True)  # a browser shortcut, not a decision
    _key(pressed, "x")
    assert pressed.progress.value == f"1 of {len(table)} reviewed"
    pressed.target.value = other
    _key(pressed, "r")
    _key(pressed, "2")
    _key(pressed, "s")
    _key(pressed, "d")
    columns = ["text_hash", "decision", "new_label", "old_label"]
    by_click = pd.read_csv(tmp_path / "clicked.csv", dtype=str, keep_default_na=False)
    by_key = pd.read_csv(tmp_path / "pressed.csv", dtype=str, keep_default_na=False)
    assert by_key["decision"].tolist() == ["keep", "relabel", "relabel", "drop"]
    assert by_key[columns].equals(by_click[columns])
    assert pressed.progress.value == clicked.progress.value


def test_exported_candidates_come_back_as_corrections(candidates, tmp_path, small_sample):
    table, labels, _ = candidates
    path = export_candidates(table, tmp_path / "review.csv")
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet.loc[0, "decision"] = "relabel"
    sheet.loc[0, "new_label"] = sheet.loc[0, "suggested"]
    sheet.loc[1, "decision"] = "drop"
    sheet.to_csv(path, index=False)  # what a spreadsheet saves
    corrections = read_corrections(path)
    assert corrections.rows == 2
    split = split_tickets(load_tickets(small_sample, corrections=path))
    assert split.corrections["dropped"] == 1
