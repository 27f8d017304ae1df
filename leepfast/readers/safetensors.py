"""The safetensors reader: one 2-D float tensor of a ``.safetensors`` file, mapped in place.

The format is a little-endian uint64 ``n``, ``n`` bytes of a JSON object, then the data:
each tensor is ``{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}`` with the
offsets counted from the end of the header. The header is parsed here (no dependency on
the ``safetensors`` package) with limits: at most 16 MiB of JSON, an object of objects,
offsets inside the file, sizes that agree with the shapes; nothing is ever executed or
unpickled. F16, F32, F64 and BF16 tensors are mapped as they are (BF16 as its bit
patterns, widened to float32 in the kernels, exactly). ``key`` names the tensor when
the file holds several.
"""

import json
import os
import struct

import numpy as np

from . import containers
from ._common import choose, fail, file_size, words
from .mapped import PredictionFile

NAME = "safetensors"

#: Longest JSON header accepted.
MAX_HEADER = containers.MAX_SAFETENSORS_HEADER
#: The float dtypes a tensor may have, as numpy dtypes (BF16: its bit patterns).
DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}


def claims(path):
    """A file whose name ends in .safetensors, or that opens with a safetensors header."""
    if os.fspath(path).lower().endswith(".safetensors"):
        return True
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(containers.HEAD)
    return containers.is_safetensors(head, path, size)


def read_header(path, role):
    """(tensors, data offset): the header's tensor entries (``__metadata__`` left out),
    each checked, and the offset of the data section."""
    name = os.fspath(path)
    size = file_size(path, role)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            fail(role, name, f"not a safetensors file: {size} bytes, no header length")
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER:
            fail(
                role,
                name,
                f"safetensors header length is {n} bytes; expected at most {MAX_HEADER}",
            )
        if 8 + n > size:
            fail(
                role,
                name,
                f"truncated safetensors file: the header claims {n} bytes but the "
                f"file has {size - 8} after the length",
            )
        text = f.read(n)
    try:
        header = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        fail(role, name, "safetensors header is not valid JSON")
    if not isinstance(header, dict):
        fail(role, name, "safetensors header is not a JSON object")
    data = size - 8 - n
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        tensors[key] = _check_entry(key, entry, data, role, name)
    if not tensors:
        fail(role, name, "holds no tensors")
    return tensors, 8 + n


def _check_entry(key, entry, data, role, name):
    """(dtype code, shape, begin, end) of one tensor entry, checked against the data."""
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list)
        and all(type(d) is int and d >= 0 for d in entry["shape"])
        and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2
        and all(type(o) is int and o >= 0 for o in entry["data_offsets"])
    )
    if not ok:
        fail(
            role,
            name,
            f"safetensors entry {key!r} is {str(entry)[:80]}; expected "
            f'{{"dtype": str, "shape": [int, ...], "data_offsets": [int, int]}}',
        )
    begin, end = entry["data_offsets"]
    if not begin <= end <= data:
        fail(
            role,
            name,
            f"tensor {key!r} has data_offsets [{begin}, {end}]; expected offsets "
            f"inside its {data} bytes of data",
        )
    return entry["dtype"], tuple(entry["shape"]), begin, end


def open_rows(path, *, dtype=None, n_source=None, role="predictions", key=None):
    """A :class:`~leepfast.readers.mapped.PredictionFile` of the tensor ``key`` (the only
    one when ``key`` is None); ``dtype`` and ``n_source``, when given, must agree."""
    name = os.fspath(path)
    tensors, start = read_header(path, role)
    key = choose(sorted(tensors), key, role, name, "tensors")
    code, shape, begin, end = tensors[key]
    if code not in DTYPES:
        fail(
            role,
            name,
            f"tensor {key!r} has dtype {code}; expected F16, F32, F64 or BF16 {role}",
        )
    stored = np.dtype(DTYPES[code])
    if len(shape) != 2:
        fail(
            role,
            name,
            f"tensor {key!r} has shape {shape}; expected shape {words(role)['shape']}",
        )
    if shape[0] * shape[1] * stored.itemsize != end - begin:
        fail(
            role,
            name,
            f"tensor {key!r}: shape {shape} of {code} is "
            f"{shape[0] * shape[1] * stored.itemsize} bytes, but its data_offsets "
            f"span {end - begin}",
        )
    if shape[0] * shape[1] == 0:
        fail(
            role,
            name,
            f"tensor {key!r} holds no data (shape {shape}); expected at least one "
            f"sample and one {words(role)['column']}",
        )
    bf16 = code == "BF16"
    f = PredictionFile(path, NAME, stored, shape, start + begin, role=role, bfloat16=bf16)
    return f.given(dtype, n_source, key)
