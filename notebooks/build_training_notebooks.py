"""Writes 02_fine_tuning.ipynb and 04_evaluation.ipynb (thin: the logic is in workbench/).

Run `python notebooks/build_training_notebooks.py` after editing; outputs are never committed.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = '''# Parameters (papermill injects values from `workbench report`; None means the recipe's default)
data_path = "../data/sample/tickets.csv"
text_column = "Document"
label_column = "Topic_group"
seed = 42
test_size = 0.2
validation_size = 0.1
base_model = "sentence-transformers/all-MiniLM-L6-v2"
max_seq_length = None
run_dir = "../runs/interactive"
recipe = "seed"
num_pairs = None
epochs = None
batch_size = None
learning_rate = None
training_params = {}  # any other recipe knob, e.g. {"loss": "online_contrastive"}
'''

SETUP = '''from pathlib import Path

from workbench import display as wb
from workbench import evaluation, training
from workbench.data import load_tickets, split_tickets

wb.setup()
data = load_tickets(data_path, text_column, label_column)
split = split_tickets(data, test_size=test_size, validation_size=validation_size, seed=seed)
training_dir = Path(run_dir) / "training"
overrides = {k: v for k, v in {"base_model": base_model, "max_seq_length": max_seq_length, "num_pairs": num_pairs,
             "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}.items() if v is not None}
overrides.update(training_params or {})
params = training.resolve_recipe(recipe, overrides)'''


def fine_tuning() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Fine-tuning\n\nFine-tunes the base sentence-transformer with the chosen recipe on the training split "
            "and writes the training folder (model, labels, head, recipe, log, model card, test predictions). "
            "The recipe `seed` is the reference model card: (ticket, category name) pairs, CosineSimilarityLoss, "
            "classification by cosine similarity to the category names."
        ),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(
            SETUP
            + '''
wb.kpis({"recipe": recipe, "training tickets": len(split.train), "examples": int(params["num_pairs"]),
         "epochs": params["epochs"], "max_seq_length": int(params["max_seq_length"])})
wb.note(f"Data: {data.path.name} (SHA-256 {data.sha256[:12]}…); split seed {seed}: train {len(split.train)}, "
        f"validation {len(split.validation)}, test {len(split.test)}.")'''
        ),
        new_markdown_cell("## Training\n\nProgress goes to the terminal; this page keeps the results."),
        new_code_cell(
            '''result = training.train(data, training_dir, recipe, overrides, seed=seed, test_size=test_size,
                        validation_size=validation_size)
record = result.recipe
wb.kpis({"training seconds": f"{record['training_seconds']:.1f}", "steps": record["steps"], "device": record["device"],
         "positive share": "n/a" if record["examples"]["positive_share"] is None else f"{record['examples']['positive_share']:.2f}"})'''
        ),
        new_markdown_cell("## Training curve"),
        new_code_cell(
            '''if len(result.log):
    wb.show(evaluation.loss_figure(result.log, f"Training loss, recipe {recipe}"))
else:
    wb.note("No optimisation steps (epochs is 0): the base model is used as is.")'''
        ),
        new_markdown_cell("## Model card summary\n\nThe full card is `training/README.md` in the run folder."),
        new_code_cell(
            '''import pandas as pd

wb.show_table(pd.DataFrame([{"parameter": k, "value": str(v)} for k, v in sorted(record["params"].items())]),
              caption=f"Recipe '{recipe}': every parameter")
if "headline" in result.metrics:
    rows = [{"method": f"this model ({recipe})", **result.metrics["headline"]}]
    rows += [{"method": name, **values} for name, values in result.metrics.get("baselines", {}).items()]
    wb.show_table(pd.DataFrame(rows), caption="Test split (details in the evaluation notebook)")
wb.note(f"Training folder: {training_dir}")'''
        ),
    ]
    return _notebook(cells)


def evaluation_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Evaluation\n\nThe fine-tuned classifier on the test split: headline metrics, per-category scores, "
            "confusion matrices, the most confused categories, misclassified tickets, calibration, and the "
            "baselines (TF-IDF + LinearSVC, the base model zero-shot) on the same split."
        ),
        new_code_cell(
            PARAMETERS + "misclassified_limit = 20\ncalibration_bins = 10\n",
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(
            SETUP
            + '''
if not (training_dir / "labels.json").exists():
    raise FileNotFoundError(f"no trained model in {training_dir}: run 02_fine_tuning first (same run_dir)")
result = evaluation.evaluate(training_dir, split.train, split.test, base_model, params["max_seq_length"])
result.write(run_dir)
wb.kpis({k: v for k, v in result.headline.items()} | {"test tickets": len(split.test)})
wb.note(f"Recipe '{result.recipe}', trained in {result.training_seconds:.1f} s. Written: metrics.json and predictions.csv in the run folder.")'''
        ),
        new_markdown_cell("## Recipe against baselines\n\nSame test split for every row; Δ is in macro-F1 points."),
        new_code_cell(
            '''wb.show_table(evaluation.comparison_table(result.recipe, result.headline, result.baselines), caption="Comparison on the test split")'''
        ),
        new_markdown_cell("## Per category"),
        new_code_cell('''wb.show_table(result.per_class, caption="Precision, recall, F1 and support per category")'''),
        new_markdown_cell("## Confusion matrices\n\nRows are the true category; hover for counts and shares."),
        new_code_cell(
            '''counts_fig, share_fig = evaluation.confusion_figures(result.counts, result.normalised, result.labels)
wb.show(counts_fig)
wb.show(share_fig)'''
        ),
        new_markdown_cell("## Most confused pairs"),
        new_code_cell('''wb.show_table(evaluation.most_confused(result.counts, result.labels), caption="Largest off-diagonal cells")'''),
        new_markdown_cell("## Misclassified tickets\n\nMost confident mistakes first, with the score of the true category."),
        new_code_cell(
            '''wrong = evaluation.misclassified(result.table, result.labels, limit=misclassified_limit)
wb.show_table(wrong, caption=f"{int((result.table['label'] != result.table['predicted']).sum())} misclassified; the first {len(wrong)}")'''
        ),
        new_markdown_cell(
            "## Calibration\n\nDoes a confidence of 0.8 mean right 80 % of the time? Recipes without a head use a "
            "softmax of the cosine similarities (temperature 0.05) as confidence."
        ),
        new_code_cell(
            '''calibration_table, ece = evaluation.calibration(result.probabilities, split.test["label"], result.labels, bins=calibration_bins)
wb.show(evaluation.reliability_figure(calibration_table, ece))
wb.show_table(calibration_table, caption=f"Reliability bins (expected calibration error {ece:.3f})")'''
        ),
    ]
    return _notebook(cells)


def _notebook(cells) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return notebook


if __name__ == "__main__":
    nbformat.write(fine_tuning(), HERE / "02_fine_tuning.ipynb")
    nbformat.write(evaluation_notebook(), HERE / "04_evaluation.ipynb")
    print("wrote 02_fine_tuning.ipynb and 04_evaluation.ipynb")
