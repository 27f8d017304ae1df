"""Tensors and other array-likes as host NumPy arrays, without copies.

Anything with ``__dlpack__`` (PyTorch, JAX, TensorFlow, CuPy) is taken through DLPack,
zero-copy, when it lives in host memory; a tensor on an accelerator is refused with a
message saying to move it (leepfast never copies a device tensor behind the caller's
back). bfloat16, which NumPy has no dtype for, is taken as its bit patterns, zero-copy:
an array of :data:`BFLOAT16` (uint16 marked as bfloat16), which the kernels widen to
float32 as they read it (a shift: exact), with a row-sum tolerance of its own; where
floats are needed (the feature scores, messages) it is widened with
:func:`widen_bfloat16`. Anything else goes through ``np.asarray`` (lists, pandas Series,
objects with ``__array__``).
"""

import numpy as np

from ._errors import InputError

#: bfloat16 values as leepfast holds them: their bit patterns, native-endian uint16,
#: marked by the dtype's metadata (kept by views, slices, copies and memory maps). A
#: plain uint16 array is never taken for bfloat16.
BFLOAT16 = np.dtype(np.uint16, metadata={"leepfast": "bfloat16"})


def is_bfloat16(dtype):
    """Whether ``dtype`` is :data:`BFLOAT16`."""
    meta = dtype.metadata
    return meta is not None and meta.get("leepfast") == "bfloat16"


def dtype_name(dtype):
    """The name of a dtype of values: "bfloat16" for :data:`BFLOAT16`."""
    return "bfloat16" if is_bfloat16(dtype) else dtype.name


def bfloat16_of(values):
    """``values`` rounded to the nearest bfloat16 (ties to even, as PyTorch and JAX
    round), as a :data:`BFLOAT16` array of their bits; NaN stays NaN."""
    f = np.asarray(values, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    rounded[np.isnan(f)] = 0x7FC0
    return rounded.view(BFLOAT16)


def as_floats(arr):
    """``arr`` itself, or the float32 values of a :data:`BFLOAT16` array (a copy)."""
    return widen_bfloat16(arr) if is_bfloat16(arr.dtype) else arr


# DLPack device types whose memory the CPU reads: kDLCPU, kDLCUDAHost, kDLROCMHost,
# kDLCUDAManaged
_HOST_DEVICES = {1, 3, 11, 13}
_DEVICE_NAMES = {
    2: "cuda",
    4: "opencl",
    7: "vulkan",
    8: "metal",
    9: "vpi",
    10: "rocm",
    12: "ext_dev",
    14: "oneapi",
    15: "webgpu",
    16: "hexagon",
    17: "maia",
}


def _is_bfloat16(obj):
    return str(getattr(obj, "dtype", "")).endswith("bfloat16")


def widen_bfloat16(bits, out=None):
    """float32 values of bfloat16 bit patterns (uint16 or BFLOAT16): the bits moved up
    16, exact; into ``out`` (a float32 array of the same shape) when given."""
    if out is None:
        out = np.empty(bits.shape, np.float32)
    np.left_shift(bits.view(np.uint16), 16, out=out.view(np.uint32), dtype=np.uint32)
    return out


def as_host_array(obj, name, widen=True):
    """(array, was_bfloat16): ``obj`` as an ndarray on the host, a view when possible;
    bfloat16 (a tensor, or an array of an extension dtype such as ml_dtypes') as
    float32 with ``widen``, else as a zero-copy :data:`BFLOAT16` view of its bits."""
    if isinstance(obj, np.ndarray):
        dtype = obj.dtype
        # ml_dtypes', JAX's bfloat16 (dtype.name is a Python property that costs
        # microseconds: asked of 2-byte dtypes only)
        if dtype.itemsize == 2 and dtype.name == "bfloat16":
            return _bfloat16_of(obj.view(np.uint16), widen), True
        if widen and is_bfloat16(obj.dtype):
            return widen_bfloat16(obj), True
        return obj, is_bfloat16(obj.dtype)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        device, index = obj.__dlpack_device__()
        if int(device) not in _HOST_DEVICES:
            kind = _DEVICE_NAMES.get(int(device), f"device type {int(device)}")
            raise InputError(
                f"{name}: expected an array in host memory, got a tensor on {kind}:"
                f"{index}; move it to the host first (e.g. tensor.cpu() in PyTorch)",
                name,
            )
        if _is_bfloat16(obj):
            return _bfloat16_of(_bfloat16_bits(obj, name), widen), True
        try:
            return np.from_dlpack(obj), False
        except (BufferError, TypeError, RuntimeError, ValueError):
            pass  # e.g. a read-only or conjugated tensor: fall through to __array__
    return np.asarray(obj), False


def _bfloat16_of(bits, widen):
    """bfloat16 bit patterns (uint16) as float32 (``widen``) or as a BFLOAT16 view."""
    return widen_bfloat16(bits) if widen else bits.view(BFLOAT16)


def _bfloat16_bits(obj, name):
    view = getattr(obj, "view", None)
    if view is not None:
        try:  # PyTorch: a tensor's bits as int16, zero-copy
            import torch

            return np.from_dlpack(view(torch.int16)).view(np.uint16)
        except (ImportError, TypeError, RuntimeError):
            pass
    try:  # JAX, ml_dtypes: NumPy arrays of an extension dtype
        return np.asarray(obj).view(np.uint16)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name}: a bfloat16 tensor whose bits cannot be read ({err}); convert it to "
            f"float32 first"
        ) from None
