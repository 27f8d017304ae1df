"""Write the small cache the smoke test runs on (tests/test_zoo.py), from a full cache.

    python examples/zoo/make_smoke.py [--cache DIR] [--out examples/zoo/smoke]

Two target sets (a digit one and a non-digit one), 6 images per class, every source's
logits as float16 and its features reduced to their first 16 principal components (of
those 60 images), float16: about 300 KB. Its numbers exercise the code, they are not
results.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = ["sklearn-digits", "fashion-mnist"]
PER_CLASS = 6
COMPONENTS = 16


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument("--out", type=Path, default=HERE / "smoke")
    args = p.parse_args(argv)
    meta = json.loads((args.cache / "meta.json").read_text())
    if args.out.exists():
        shutil.rmtree(args.out)
    rng = np.random.default_rng(1)
    for t in TARGETS:
        y = np.load(args.cache / t / "labels.npy")
        keep = np.sort(
            np.concatenate(
                [
                    rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False)
                    for c in range(10)
                ]
            )
        )
        (args.out / t).mkdir(parents=True)
        np.save(args.out / t / "labels.npy", y[keep])
        for s in meta["sources"]:
            with np.load(args.cache / t / f"{s}.npz") as z:
                logits, feats = z["logits"][keep], z["features"][keep].astype(np.float64)
            centred = feats - feats.mean(0)
            u, sv, _ = np.linalg.svd(centred, full_matrices=False)
            reduced = u[:, :COMPONENTS] * sv[:COMPONENTS]
            np.savez_compressed(
                args.out / t / f"{s}.npz",
                logits=logits.astype(np.float16),
                features=reduced.astype(np.float16),
            )
    meta["targets"] = {t: meta["targets"][t] for t in TARGETS}
    meta["per_class"] = PER_CLASS
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out}: {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
