"""Writes notebooks/03_embedding_visualization.ipynb (no outputs). Run: python notebooks/make_03_embedding_visualization.py"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

md, code = new_markdown_cell, new_code_cell

PARAMETERS = """\
# Parameters (papermill injects values from `workbench report`)
data_path = "../data/sample/tickets.csv"
text_column = "Document"
label_column = "Topic_group"
seed = 42
test_size = 0.2
validation_size = 0.1
base_model = "sentence-transformers/all-MiniLM-L6-v2"
max_seq_length = 256
run_dir = ""  # the report's run folder; its training/ subfolder holds the fine-tuned model
training_dir = ""  # empty means run_dir/training
umap_max_points = 3000  # tickets on the map; above this a stratified sample
umap_3d = False  # also draw 3-D maps (WebGL)
umap_neighbors = 15
svg_max_points = 8000  # SVG up to this many points per map, WebGL above
silhouette_max_points = 5000
label_issue_folds = 5
near_duplicate_threshold = 0.9
top_n = 15"""

SETUP = """\
import time
from pathlib import Path

import pandas as pd

from workbench import display as wb
from workbench import interactive, label_issues, maps
from workbench.data import load_tickets, split_tickets

wb.setup()
started = time.time()
data = load_tickets(data_path, text_column, label_column)
split = split_tickets(data, test_size=test_size, validation_size=validation_size, seed=seed)
frame = pd.concat([part.assign(split=name) for name, part in split.parts().items()], ignore_index=True)
labels = data.labels
training = Path(training_dir) if training_dir else Path(run_dir or ".") / "training"
base = maps.load_base(base_model, labels, max_seq_length)
tuned = maps.load_finetuned(training)
models = [base] + ([tuned] if tuned else [])
final = models[-1]
wb.kpis({"tickets": len(frame), "categories": len(labels), "test tickets": len(split.test),
         "models compared": len(models)})
if tuned is None:
    wb.note(f"No fine-tuned model at {training} (the fine-tuning notebook did not run before this one): "
            "this report shows the base model only; predictions are its zero-shot cosine to the category names.")
else:
    wb.note(f"Fine-tuned model: {tuned.source}. Base model: {base.source} (max_seq_length {base.model.max_seq_length}). "
            "Base-model predictions are zero-shot: cosine similarity to the category names.")"""

ENCODE = """\
embeddings = {m.name: m.embed(frame["text"]) for m in models}
scores = {m.name: m.scores_from_embeddings(embeddings[m.name], frame["text"].tolist()) for m in models}
predicted = {m.name: maps.predictions(scores[m.name], m.labels) for m in models}
is_test = (frame["split"] == "test").to_numpy()
wb.kpis({f"test accuracy, {name}": float((p["predicted"].to_numpy() == frame["label"].to_numpy())[is_test].mean())
         for name, p in predicted.items()})"""

MAP = """\
sample = maps.sample_points(frame, umap_max_points, seed)
points = frame.iloc[sample].reset_index(drop=True)
titles = {"base model": "base model (zero-shot)", "fine-tuned": "fine-tuned"}

def build_maps(n_components):
    return [maps.build_map(titles[m.name], embeddings[m.name][sample], m.label_vectors(), scores[m.name][sample],
                           m.labels, n_components=n_components, seed=seed, n_neighbors=umap_neighbors) for m in models]

maps_2d = build_maps(2)
figure = maps.map_figure(points, maps_2d, labels, title="Ticket embeddings, UMAP 2-D", svg_max_points=svg_max_points)
wb.show(figure)
renderer = "WebGL" if len(points) > svg_max_points else "SVG"
wb.note((f"All {len(frame)} tickets are drawn" if len(points) == len(frame) else
         f"{len(points)} of {len(frame)} tickets are drawn: a stratified sample (umap_max_points {umap_max_points}) "
         "keeps each category's share while bounding UMAP time and page size")
        + f"; {renderer} rendering. Diamonds are the category names embedded by each model. "
        f"Hover a point for true → predicted category, score and the ticket (first {maps.hover_limit_for(len(points))} characters); "
        "click a legend entry to hide a category.")"""

MAP_3D = """\
if umap_3d:
    wb.show(maps.map_figure(points, build_maps(3), labels, title="Ticket embeddings, UMAP 3-D", height=650))
    wb.note("3-D maps always use WebGL; in a browser without WebGL they stay empty, the 2-D maps above do not.")
else:
    wb.note("3-D maps are off (set umap_3d to true to draw them).")"""

SILHOUETTE = """\
held_out = (frame["split"] != "train").to_numpy()
quality = maps.silhouette_table({m.name: maps.class_silhouettes(embeddings[m.name][held_out], frame["label"][held_out],
                                                                silhouette_max_points, seed) for m in models})
wb.show(maps.silhouette_figure(quality.drop(index="all"), title="Cluster quality per category (held-out tickets)"))
wb.show_table(quality, caption="Mean silhouette per category (cosine, original embedding space)")
wb.note(f"Silhouette from -1 to 1: how much closer a ticket is to its own category than to the nearest other one. "
        f"Computed on held-out tickets only ({int(held_out.sum())}"
        + (f", sampled to {silhouette_max_points}" if held_out.sum() > silhouette_max_points else "")
        + "), since the fine-tuned model has seen the training tickets.")"""

ERRORS = """\
test = frame[is_test].reset_index(drop=True).join(predicted[final.name][is_test].reset_index(drop=True))
train_mask = (frame["split"] == "train").to_numpy()
wrong = label_issues.misclassified_with_neighbours(test, embeddings[final.name][is_test], frame[train_mask].reset_index(drop=True),
                                                   embeddings[final.name][train_mask], k=3)
wb.kpis({"misclassified test tickets": len(wrong), "of test tickets": f"{len(wrong) / max(len(test), 1):.1%}",
         "neighbours carry the predicted label": int((wrong["neighbours agree with"] == "predicted").sum())})
if len(wrong):
    pairs = wrong.groupby(["true", "predicted"]).size().rename("tickets").sort_values(ascending=False).head(10).reset_index()
    wb.show_table(pairs, caption="Most frequent confusions (test)")
    wb.show_table(label_issues.neighbours_table(wrong, limit=top_n),
                  caption=f"Misclassified test tickets (most confident first) and their 3 nearest training tickets ({final.name} space)")
    wb.note("When the nearest training tickets carry the predicted label, the model followed its training data: "
            "the categories overlap there, or those training labels are wrong.")"""

ISSUES = """\
probabilities = label_issues.out_of_sample_probabilities(embeddings[base.name], frame["label"], labels,
                                                         folds=label_issue_folds, seed=seed)
issues = label_issues.find_label_issues(frame, probabilities, labels)
wb.kpis({"likely label errors": len(issues), "share of tickets": f"{len(issues) / len(frame):.1%}"})
wb.show_table(label_issues.issue_summary(issues, frame), caption="Likely label errors per given category")
if len(issues):
    shown = issues.head(top_n).drop(columns="position").assign(text=lambda d: d["text"].map(wb.shorten))
    wb.show_table(shown, caption=f"Most likely label errors (top {len(shown)}; quality 0 means surely wrong)")
wb.note(f"Out-of-sample probabilities: {label_issue_folds}-fold cross-validated logistic regression on base-model embeddings "
        "(not the fine-tuned ones: that model learned these very labels and would vouch for them); cleanlab's "
        "confident learning picks the issues and ranks them by self-confidence.")"""

DUPLICATES = """\
conflicts = label_issues.conflicting_duplicates(frame, threshold=near_duplicate_threshold)
wb.kpis({"duplicate pairs with conflicting labels": len(conflicts)})
if len(conflicts):
    wb.show_table(conflicts.head(top_n).assign(text_a=lambda d: d["text_a"].map(wb.shorten), text_b=lambda d: d["text_b"].map(wb.shorten)),
                  caption=f"Exact and near duplicates (TF-IDF cosine at least {near_duplicate_threshold}) with different labels")"""

EXPLORER = """\
examples = test.groupby("label").head(1)["text"].tolist()[:8]
explorer = interactive.show_explorer(points, maps_2d, final.labels, final.scores, examples)
wb.note(f"Notebook computed in {time.time() - started:.0f} s.")"""


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    parameters = code(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        md(
            "# Embedding visualization and error analysis\n\n"
            "What the model learned and where the labels are wrong: ticket embeddings of the base and the "
            "fine-tuned model mapped to 2-D side by side, how well each category clusters before and after "
            "fine-tuning, misclassified tickets with their nearest training tickets, likely label errors, and "
            "duplicates with conflicting labels."
        ),
        parameters,
        code(SETUP),
        md("## Embeddings and predictions\n\nEvery ticket is encoded by each model (cached on disk, so re-runs are fast)."),
        code(ENCODE),
        md(
            "## Embedding maps\n\n"
            "UMAP (cosine, fixed seed) of each model's ticket embeddings. Fine-tuning should pull each category "
            "together and apart from the others. The buttons recolour the points by true category, predicted "
            "category, or correct/incorrect."
        ),
        code(MAP),
        code(MAP_3D),
        md("## Cluster quality before and after fine-tuning"),
        code(SILHOUETTE),
        md("## Misclassified test tickets and their nearest training tickets"),
        code(ERRORS),
        md("## Likely label errors"),
        code(ISSUES),
        md("## Duplicates with conflicting labels"),
        code(DUPLICATES),
        md("## Explore"),
        code(EXPLORER),
    ]
    return nb


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "03_embedding_visualization.ipynb"
    nbformat.write(build(), target)
    print(target)
