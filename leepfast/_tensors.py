"""Tensors and other array-likes as host NumPy arrays, without copies.

Anything with ``__dlpack__`` (PyTorch, JAX, TensorFlow, CuPy) is taken through DLPack,
zero-copy, when it lives in host memory; a tensor on an accelerator is refused with a
message saying to move it (leepfast never copies a device tensor behind the caller's
back). bfloat16, which NumPy has no dtype for, is widened to float32 (its upper 16 bits:
exact) in one copy, and keeps a tolerance of its own. Anything else goes through
``np.asarray`` (lists, pandas Series, objects with ``__array__``).
"""

import numpy as np

from ._errors import InputError

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
    """float32 values of bfloat16 bit patterns (uint16): the bits moved up 16, exact;
    into ``out`` (a float32 array of the same shape) when given."""
    if out is None:
        out = np.empty(bits.shape, np.float32)
    np.left_shift(bits, 16, out=out.view(np.uint32), dtype=np.uint32)
    return out


def as_host_array(obj, name):
    """(array, was_bfloat16): ``obj`` as an ndarray on the host, a view when possible."""
    if isinstance(obj, np.ndarray):
        return obj, False
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
            return widen_bfloat16(_bfloat16_bits(obj, name)), True
        try:
            return np.from_dlpack(obj), False
        except (BufferError, TypeError, RuntimeError, ValueError):
            pass  # e.g. a read-only or conjugated tensor: fall through to __array__
    return np.asarray(obj), False


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
