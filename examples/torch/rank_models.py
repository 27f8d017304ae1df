"""Rank PyTorch models by LEEP from one forward pass, and check the ranking against
their measured transfer accuracy.

    pip install torch==2.13.0 && pip install . && python examples/torch/rank_models.py
    python examples/torch/rank_models.py --quick          # a smaller run (seconds)
    python examples/torch/rank_models.py --json out.json  # the numbers, machine-readable

Everything is made here, seeded, offline (nothing is downloaded):

- A domain: 64-dimensional inputs rendered from an 8-dimensional latent by a fixed
  random two-layer network, plus noise. A class is a Gaussian cloud around a centre in
  the latent space.
- A source task of 20 classes and a target task of 10 other classes (other centres) in
  the same domain: a different label set, as in transfer learning.
- A zoo of MLPs (``torch.nn.Module``) pretrained on the source task, with different
  widths, depths and training lengths (one not trained at all), so that they differ in
  how well they transfer. One of them runs its forward pass in bfloat16
  (``torch.autocast``).

For each model, one forward pass over the target training split through a
``DataLoader`` under ``torch.inference_mode()``: a forward hook on the penultimate layer
captures the features, and each batch's softmax, labels and features (tensors, taken
zero-copy) go to ``leepfast.Scorer(features=True).add``. ``result()`` gives LEEP, NCE,
H-score, regularized H-score and LogME. The transfer accuracy is that of a new linear
head (multinomial logistic regression, L2, standardised features, full-batch L-BFGS) on
the frozen penultimate features of the target training split, measured on a held-out
target test split. ``leepfast.rank`` then ranks the models' target predictions by LEEP
and reports the correlations with those accuracies.
"""

import argparse
import json
import os
import time
from contextlib import nullcontext

# one BLAS thread for the feature scores' small D x D algebra: beside torch, OpenBLAS's
# spinning threads made them 20x slower on a busy 2-core machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import leepfast  # noqa: E402

D_IN, LATENT, N_SOURCE, N_TARGET = 64, 8, 20, 10
BATCH = 256

#: samples of each split; ``steps`` scales every model's pretraining steps
SIZES = {
    "full": dict(source=20_000, target_train=1_000, target_test=2_000, steps=1.0),
    "quick": dict(source=3_000, target_train=400, target_test=400, steps=0.2),
}

#: name -> hidden widths (the last is the penultimate layer), pretraining steps, and
#: whether its forward pass runs in bfloat16
ZOO = {
    "mlp-256x2": dict(widths=(256, 256), steps=1500, bfloat16=False),
    "mlp-256x2-mid-bf16": dict(widths=(256, 256), steps=600, bfloat16=True),
    "mlp-64x2": dict(widths=(64, 64), steps=1500, bfloat16=False),
    "mlp-64x2-short": dict(widths=(64, 64), steps=40, bfloat16=False),
    "mlp-32": dict(widths=(32,), steps=1500, bfloat16=False),
    "mlp-6": dict(widths=(6,), steps=1500, bfloat16=False),
    "mlp-64x2-untrained": dict(widths=(64, 64), steps=0, bfloat16=False),
}


# ---------------------------------------------------------------------------------------
# The domain and its two tasks


def make_domain(seed):
    """The fixed renderer (latent -> input) and the class centres of both tasks."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        w1=torch.randn(LATENT, 128, generator=g) * 1.5,
        b1=torch.randn(128, generator=g) * 0.5,
        w2=torch.randn(128, D_IN, generator=g) / 128**0.5 * 2.0,
        source=torch.randn(N_SOURCE, LATENT, generator=g) * 1.2,
        target=torch.randn(N_TARGET, LATENT, generator=g) * 1.2,
    )


def sample(domain, task, n, seed):
    """n labelled inputs (float32 (n, 64), int64 (n,)) of ``task`` ("source" or
    "target"), balanced over its classes."""
    g = torch.Generator().manual_seed(seed)
    centres = domain[task]
    y = torch.arange(n) % len(centres)
    y = y[torch.randperm(n, generator=g)]
    h = centres[y] + torch.randn(n, LATENT, generator=g)
    x = torch.tanh(torch.relu(h @ domain["w1"] + domain["b1"]) @ domain["w2"])
    return x + torch.randn(n, D_IN, generator=g) * 0.1, y


# ---------------------------------------------------------------------------------------
# The source models


class MLP(nn.Module):
    """ReLU layers (``body``; its last module is the penultimate layer) and a linear
    head over the source classes."""

    def __init__(self, widths, n_classes):
        super().__init__()
        layers, d = [], D_IN
        for w in widths:
            layers += [nn.Linear(d, w), nn.ReLU()]
            d = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, n_classes)

    @property
    def penultimate(self):
        return self.body[-1]

    def forward(self, x):
        return self.head(self.body(x))


def pretrain(spec, x, y, steps, seed):
    """An MLP trained on the source task with Adam for ``steps`` minibatches."""
    torch.manual_seed(seed)
    model = MLP(spec["widths"], N_SOURCE)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


# ---------------------------------------------------------------------------------------
# One forward pass, fed to a Scorer


def forward_pass(model, loader, scorer=None, bfloat16=False):
    """Run ``model`` once over ``loader``; feed each batch's softmax, labels and
    penultimate features (captured by a forward hook) to ``scorer`` when given.

    Returns the concatenated (probabilities, features, labels), as fed."""
    captured = []
    hook = model.penultimate.register_forward_hook(
        lambda module, inputs, output: captured.append(output)
    )
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bfloat16 else nullcontext()
    probs, feats, labels = [], [], []
    try:
        with torch.inference_mode(), autocast:
            for x, y in loader:
                p = model(x).softmax(-1)
                f = captured.pop()
                if bfloat16:  # under autocast the linear layers already ran in bfloat16
                    p, f = p.to(torch.bfloat16), f.to(torch.bfloat16)
                if scorer is not None:
                    scorer.add(p, y, features=f)  # tensors: no .numpy()
                probs.append(p)
                feats.append(f)
                labels.append(y)
    finally:
        hook.remove()
    return torch.cat(probs), torch.cat(feats), torch.cat(labels)


# ---------------------------------------------------------------------------------------
# Transfer accuracy: a new linear head on the frozen features


def probe_accuracy(train_f, train_y, test_f, test_y, n_classes, l2=1e-3, iters=100):
    """Accuracy on the test split of an L2 logistic-regression head trained (full batch,
    L-BFGS) on the standardised training features."""
    train_f, test_f = train_f.float().clone(), test_f.float().clone()
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    train_f, test_f = (train_f - mean) / std, (test_f - mean) / std
    head = nn.Linear(train_f.shape[1], n_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(
        head.parameters(), max_iter=iters, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(train_f), train_y)
        loss = loss + l2 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (head(test_f).argmax(1) == test_y).float().mean().item()


# ---------------------------------------------------------------------------------------
# The run


def run(size="full", seed=0, models=None, log=print):
    """Pretrain the zoo, score every model on the target set, measure its transfer.

    Returns a dict: ``scores`` (model -> ScorerResult), ``accuracy`` (model -> float),
    ``outputs`` (model -> (probabilities, features, labels) of the target training
    split, as fed to the Scorer), ``ranking`` (a leepfast.Ranking), ``models`` (model
    -> the pretrained nn.Module), ``target`` (the training split's inputs and labels)
    and ``seconds``."""
    sizes = SIZES[size]
    names = list(ZOO) if models is None else list(models)
    domain = make_domain(seed)
    src_x, src_y = sample(domain, "source", sizes["source"], seed + 1)
    train = TensorDataset(*sample(domain, "target", sizes["target_train"], seed + 2))
    test = TensorDataset(*sample(domain, "target", sizes["target_test"], seed + 3))
    train_loader = DataLoader(train, batch_size=BATCH, shuffle=False)
    test_loader = DataLoader(test, batch_size=BATCH, shuffle=False)

    scores, accuracy, outputs, seconds, modules = {}, {}, {}, {}, {}
    for name in names:
        spec = ZOO[name]
        i = list(ZOO).index(name)  # its seed: the same model whichever are run
        t0 = time.perf_counter()
        steps = round(spec["steps"] * sizes["steps"])
        model = modules[name] = pretrain(spec, src_x, src_y, steps, seed + 100 + i)
        t1 = time.perf_counter()
        scorer = leepfast.Scorer(features=True)
        outputs[name] = forward_pass(model, train_loader, scorer, spec["bfloat16"])
        scores[name] = scorer.result()
        t2 = time.perf_counter()
        _, test_f, test_y = forward_pass(model, test_loader, bfloat16=spec["bfloat16"])
        _, train_f, train_y = outputs[name]
        accuracy[name] = probe_accuracy(train_f, train_y, test_f, test_y, N_TARGET)
        t3 = time.perf_counter()
        seconds[name] = dict(pretrain=t1 - t0, score=t2 - t1, transfer=t3 - t2)
        log(
            f"{name:<20} {steps:>5} source steps ({t1 - t0:5.2f} s); forward pass + "
            f"Scorer {t2 - t1:.3f} s; linear head {t3 - t2:.2f} s"
        )
    labels = outputs[names[0]][2]
    ranking = leepfast.rank(
        {name: outputs[name][0] for name in names}, labels, accuracy=accuracy
    )
    return dict(
        scores=scores,
        accuracy=accuracy,
        outputs=outputs,
        ranking=ranking,
        models=modules,
        target=train.tensors,
        seconds=seconds,
    )


def scores_table(scores, accuracy, order):
    """The Scorer's results, one model a line, in ``order``."""
    head = (
        f"{'model':<20} {'LEEP':>10} {'NCE':>10} {'H-score':>10} {'reg. H':>10} "
        f"{'LogME':>10} {'accuracy':>9}"
    )
    lines = [head]
    for name in order:
        s = scores[name]
        lines.append(
            f"{name:<20} {s.leep:>10.6f} {s.nce:>10.6f} {s.h_score:>10.6f} "
            f"{s.regularized_h_score:>10.6f} {s.logme:>10.6f} {accuracy[name]:>9.4f}"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sets, fewer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--models", default=",".join(ZOO), help="comma-separated names")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in ZOO]
    if unknown or not names:
        p.error(f"--models: expected names from {', '.join(ZOO)}, found {args.models!r}")
    if args.threads < 1:
        p.error(f"--threads: expected an integer >= 1, found {args.threads}")
    torch.set_num_threads(args.threads)
    size = "quick" if args.quick else "full"
    sizes = SIZES[size]
    print(
        f"domain: {D_IN}-d inputs from an {LATENT}-d latent; source task {N_SOURCE} "
        f"classes, {sizes['source']} samples; target task {N_TARGET} classes, "
        f"{sizes['target_train']} train + {sizes['target_test']} test (seed {args.seed})"
    )
    start = time.perf_counter()
    out = run(size, args.seed, names)
    ranking = out["ranking"]
    print()
    print("Scorer results on the target training split (accuracy: linear head on the")
    print("frozen features, held-out target test split), best LEEP first:")
    print(scores_table(out["scores"], out["accuracy"], ranking.names))
    print()
    print(ranking.format())
    print(f"\n{time.perf_counter() - start:.1f} s")
    if args.json:
        doc = dict(
            size=size,
            seed=args.seed,
            ranking=ranking.to_dict(),
            scores={name: s.to_dict() for name, s in out["scores"].items()},
            accuracy=out["accuracy"],
        )
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
