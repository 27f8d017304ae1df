"""Type stub of the compiled extension (src_cython/_kernels.pyx)."""

import numpy as np
import numpy.typing as npt

def openmp_enabled() -> bool: ...
def simd() -> str: ...

LEVELS: tuple[str, str, str, str]

def simd_level() -> int: ...
def simd_effective(cap: int) -> int: ...
def environ_simd() -> str | None: ...
def accumulate(
    block: npt.NDArray[np.float32] | npt.NDArray[np.float64] | npt.NDArray[np.uint16],
    labels: npt.NDArray[np.int64],
    joint: npt.NDArray[np.float64],
    hard: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    logits: bool,
    tol: float,
    n_threads: int,
    simd: int = ...,
) -> tuple[int, int]: ...
def score(
    block: npt.NDArray[np.float32] | npt.NDArray[np.float64] | npt.NDArray[np.uint16],
    labels: npt.NDArray[np.int64],
    conditional: npt.NDArray[np.float64],
    logits: bool,
    tol: float,
    n_threads: int,
    chunk: int = ...,
    simd: int = ...,
) -> tuple[int, int, float]: ...
def read_floor(
    block: npt.NDArray[np.float32] | npt.NDArray[np.float64] | npt.NDArray[np.uint16],
    n_threads: int,
    chunk: int = ...,
) -> float: ...
def finalize(
    joint_slots: npt.NDArray[np.float64],
    hard_slots: npt.NDArray[np.int64],
    counts_slots: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    float,
]: ...
def both_passes(
    block: npt.NDArray[np.float32] | npt.NDArray[np.float64] | npt.NDArray[np.uint16],
    labels: npt.NDArray[np.int64],
    joint_slots: npt.NDArray[np.float64],
    hard_slots: npt.NDArray[np.int64],
    counts_slots: npt.NDArray[np.int64],
    logits: bool,
    tol: float,
    simd: int = ...,
) -> (
    tuple[
        int,
        int,
        tuple[
            npt.NDArray[np.float64],
            npt.NDArray[np.int64],
            npt.NDArray[np.int64],
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
            float,
        ]
        | None,
        float,
    ]
    | None
): ...
