"""Regenerate the demo dump bundled in ``leepfast/data/demo/`` from the experiment.

Seed 0 of the experiment (``experiment.py``): the 16 source MLPs, and the first target
task with all 10 classes (``k10-0``: 20 training images per class from
``sklearn.datasets.load_digits``). Writes, for each source, its softmax on the 200 target
training images as ``<model>.npy`` (float64, shape (200, n_source_classes)), the target
labels as ``labels.npy`` (int64), and ``accuracy.csv`` (model,accuracy): the measured
accuracy on the target test images of a new logistic-regression head on the source's
frozen hidden features. Deterministic: the same numbers as the experiment's seed 0.

Run::

    pip install ".[experiments]"
    python examples/experiment/make_demo_data.py
"""

import csv
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import experiment as E  # noqa: E402

OUT = HERE.parents[1] / "leepfast" / "data" / "demo"
SEED = 0
TARGET = "k10-0"


def main():
    from threadpoolctl import threadpool_limits

    Xs, digit = E.load_source_data()
    Xt, yt = E.load_target_data()
    Xt = Xt / 16.0
    with threadpool_limits(1):
        models = E.train_sources(Xs, digit, SEED)
        tg = next(t for t in E.target_tasks(yt, SEED) if t["name"] == TARGET)
        Xtr, Xte = Xt[tg["train"]], Xt[tg["test"]]
        ytr, yte = tg["y_train"], tg["y_test"]
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob("*.npy"):
            old.unlink()
        np.save(OUT / "labels.npy", ytr.astype(np.int64))
        rows = []
        for name, model in models.items():
            np.save(OUT / f"{name}.npy", model.predict_proba(Xtr).astype(np.float64))
            acc = E.head_accuracy(E.hidden(model, Xtr), ytr, E.hidden(model, Xte), yte)
            rows.append((name, acc))
    with open(OUT / "accuracy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "accuracy"])
        for name, acc in rows:
            w.writerow([name, f"{acc:.6f}"])
    print(f"wrote {len(rows)} models, {len(ytr)} labels to {OUT}")


if __name__ == "__main__":
    main()
