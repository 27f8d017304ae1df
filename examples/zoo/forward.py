"""Run every source model once over the target images and cache what it outputs.

    python examples/zoo/forward.py [--cache DIR] [--per-class 50] [--sources a,b]

For each target set: a fixed draw of ``--per-class`` images per class (seed 0), saved
as ``DIR/<target>/labels.npy``; for each source, ``DIR/<target>/<source>.npz`` with its
logits (float32, (n, Z)) and penultimate features (float16, (n, D)). A source already
cached is skipped, so an interrupted run resumes. Needs the ``zoo`` extra (README).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sources  # noqa: E402
import targets  # noqa: E402

BATCH = 50


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--sources", default=",".join(sources.SOURCES))
    p.add_argument("--targets", default=",".join(targets.LOADERS))
    args = p.parse_args(argv)
    names = [s for s in args.sources.split(",") if s]
    for s in names:
        if s not in sources.SOURCES:
            p.error(
                f"--sources: expected names from {sorted(sources.SOURCES)}, found {s!r}"
            )
    for t in args.targets.split(","):
        if t not in targets.LOADERS:
            p.error(
                f"--targets: expected names from {sorted(targets.LOADERS)}, found {t!r}"
            )
    if args.per_class < 2:
        p.error(f"--per-class: expected an integer >= 2, found {args.per_class}")

    data = {}
    for t in args.targets.split(","):
        images, labels = targets.load(t, args.per_class)
        out = args.cache / t
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "labels.npy", labels)
        data[t] = images
    meta = {
        "per_class": args.per_class,
        "sources": {s: sources.SOURCES[s] for s in sources.SOURCES},
        "targets": targets.DOMAINS,
    }
    (args.cache / "meta.json").write_text(json.dumps(meta, indent=1))

    for s in names:
        todo = [t for t in data if not (args.cache / t / f"{s}.npz").exists()]
        if not todo:
            continue
        run = sources.load(s)
        for t in todo:
            start = time.perf_counter()
            images = data[t]
            logits, feats = [], []
            for i in range(0, len(images), BATCH):
                lg, f = run(images[i : i + BATCH])
                logits.append(lg.astype(np.float32))
                feats.append(f.astype(np.float16))
            np.savez(
                args.cache / t / f"{s}.npz",
                logits=np.concatenate(logits),
                features=np.concatenate(feats),
            )
            print(
                f"{s:>20} on {t:<15} {len(images):5d} images "
                f"{time.perf_counter() - start:7.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
