"""The Numba backend: the two primitives written again, independently of the C core.

Imported only when the numba backend is chosen (importing leepfast never imports numba).
Same contract as every backend: pass 1 splits a block into ``joint.shape[0]`` contiguous
slices with thread-local state; pass 2 sums balanced chunks of rows (a function of the
row count only) in order, so its result does not depend on the thread count.

Speed (Numba compiles for the host CPU, so plain loops become SIMD code when LLVM can
vectorise them, and where it does not, the row kernels are written out in LLVM IR):
- rows of at most SMALL_Z values (both passes) as 1 to 4 quarters of 4 float64 lanes
  in explicit vectors, as the C core's small-row groups (see "Small rows"); float32
  and float64 rows of more, 16 values a step, as its AVX2 rows (see "Wide rows");
- pass 1 reads each row once: one loop adds it to its joint row (float64), sums it and
  takes its minimum and maximum (float16 and bfloat16: the maxima of its bit patterns
  read as unsigned and as signed integers, which vectorise; some value is negative iff
  the unsigned maximum is above the sign bit alone, -0.0); on a valid row the first
  index of the maximum (the argmax) is then found by a vectorised scan of the row,
  still in cache;
- float16 is read as its bit patterns and converted exactly inside the row loops (by
  LLVM's conversion, vcvtph2ps/vcvtph2pd, where the CPU has F16C; else branch-free bit
  arithmetic): no float32 copy of the block. Pass 1 adds float16 probabilities in
  exact int32 fixed point (value * 2^24) to a partial per class, moved to the float64
  joint every 64 rows of the class: half the bytes of the joint row per row;
- bfloat16 is read the same way, as its bit patterns typed int16 (so that every
  function is compiled apart for it), each value the float32 whose bits are them
  moved up 16 (exact): the same values, keys and argmax as the float32 widening of the
  block, without it. No fixed-point pass: bfloat16 values are not multiples of 2^-24;
- rows are passed as (array, index): a row view costs atomic reference-count updates
  on an array that both threads share. No software prefetch: prefetching each row's
  lines 4 KiB ahead had made every probability pass slower on an AVX2 Zen 3 (pass 2,
  float32, Z=1000, one thread: 18.0 -> 13.1 ms without it; two threads, whole calls:
  1.18 -> 0.93x the compiled backend; the same on a memory-mapped .npy), and logits
  no faster;
- logits: each row read twice, as the C core's AVX2 softmax rows (see "Logits rows",
  in LLVM IR): a scan in its own type (maximum, minimum, NaN), then, where its values
  span at most EXP_FAST_RANGE, one loop of exps without a libm call (the C core's
  degree-11 minimax exp in Estrin's form) into the sum, pass 1 storing the exps, pass 2
  taking their dot product and storing nothing; libm's exp otherwise (-inf entries
  included). Never normalised: pass 1 adds exp * (1 / sum) to the joint row and takes
  the argmax as the first exp equal to 1.0 (the maximum's), pass 2 divides the dot
  product by the sum;
- pass 2 keeps, per chunk, a running product of the row probabilities as a mantissa
  and an exponent, and takes one log per chunk instead of one per row (the mantissa
  brought back to [0.5, 1) only when it leaves [2^-64, 2^64], see _log_product);
- pass 2 re-checks every row as pass 1 does (label, non-finite, negative, row sum
  within ``tol``; logits: label, non-finite) in the same read as its dot product, so a
  block changed between the passes gives pass 1's status and first bad row;
- the caller's Numba thread count is restored after every call; in a child forked
  from a process whose threading layer had started (only TBB survives a fork), the
  serial twins of the parallel loops run instead: same slices, same values.
The loops in Python allow LLVM to reorder the float64 sums ('reassoc') and to use
512-bit vectors where the CPU has them; the element-wise joint update, the checks and
the NaN/infinity semantics are untouched. The kernels in IR sum in one written order,
the same in both passes.
"""

import math
import os
import threading
from types import FunctionType

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .. import _status
from .._tensors import is_bfloat16

#: The kernels read C-contiguous blocks in place (float16 and bfloat16 too: as their
#: bits) and allocate O(Z) per thread plus O(rows / CHUNK), whatever the block size: the
#: in-memory API may hand them large views of the caller's array.
TAKES_LARGE_VIEWS = True

CHUNK = 1024  # rows per pass-2 chunk, about
CHUNK_GROUP = 8  # the chunk count is 1 or a multiple of this (balanced over 1, 2, 4, 8)
# Up to this many Y x Z cells, pass 1 accumulates into state private to the slice and
# adds it to its slot at the end (small slots share cache lines across threads).
LOCAL_STATE_CELLS = 4096
SMALL_Z = 16  # rows of at most this many values: both passes in vectors (_small_add)
SMALL_PADDED_CLASSES = 256  # up to this many classes, pass 1's small rows into a copy
HARD_LAG = 16  # rows between a small row's argmax and its pair count (a power of two)
# float16 pass 1 in fixed point (int32 partials, as the C core does on AVX-512): rows of
# a class per flush, the largest partial, and the rows per class a slice needs
FIXED_ROWS = 64
FIXED_MAX_CELLS = 1 << 20
FIXED_MIN_ROWS_PER_CLASS = 64

_OK = _status.OK
_LABEL = _status.ERR_LABEL
_NONFINITE = _status.ERR_NONFINITE
_NEGATIVE = _status.ERR_NEGATIVE
_NOT_NORMALISED = _status.ERR_NOT_NORMALISED
_ZERO_PROB = _status.ERR_ZERO_PROB

_ROW = dict(cache=True, nogil=True)
_FAST = dict(_ROW, fastmath={"reassoc", "contract"})  # reorder sums, fuse multiply-adds

# ---------------------------------------------------------------------------------------
# Elements: float32 and float64 as they are, float16 as its uint16 bit patterns and
# bfloat16 as its int16 bit patterns (two types, so each function is compiled for each)


def _key_intrinsic(signed):
    """An intrinsic giving the bit pattern of a float as an integer of the same width
    (of float16 and bfloat16, passed as their uint16 and int16 bits: those bits)."""

    def key(typingctx, x):
        if isinstance(x, types.Float) or x in (types.uint16, types.int16):
            width = x.bitwidth
        else:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(width))

        return types.Integer.from_bitwidth(width, signed=signed)(x), codegen

    return intrinsic(key)


# Unsigned, the sign bit is the highest: a negative value's key is above SIGN, -0.0's is
# SIGN, a positive value's below. Signed, every value with the sign bit set is below
# every positive one, and positive values keep their order.
_key = _key_intrinsic(signed=False)
_skey = _key_intrinsic(signed=True)


@intrinsic
def _f64_bits(typingctx, x):
    """The bit pattern of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def _f64_of_bits(typingctx, x):
    """The float64 whose bit pattern is the int64 x."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen


@intrinsic
def _first_equal(typingctx, rows, i, key):
    """The first index z of row i of a 2-D C-contiguous array whose element's bit
    pattern is the integer ``key`` (rows.shape[1] if none), where LLVM's loop vectoriser
    cannot help (the loop exits early): 512 bits are compared per step, the mask's
    trailing zeros give the index; the tail is scalar."""
    if not (
        isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and isinstance(i, types.Integer)
        and isinstance(key, types.Integer)
        and rows.dtype.bitwidth == key.bitwidth
    ):
        return None
    width = key.bitwidth
    lanes = 512 // width

    def codegen(context, builder, signature, args):
        i64, elem, bits = ir.IntType(64), ir.IntType(width), ir.IntType(lanes)
        vec = ir.VectorType(elem, lanes)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        n = builder.extract_value(ary.shape, 1)
        row = context.cast(builder, args[1], signature.args[1], types.int64)
        data = builder.gep(
            builder.bitcast(ary.data, elem.as_pointer()), [builder.mul(row, n)]
        )
        key = args[2]
        splat = builder.insert_element(
            ir.Constant(vec, ir.Undefined), key, ir.Constant(ir.IntType(32), 0)
        )
        splat = builder.shuffle_vector(
            splat,
            ir.Constant(vec, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes),
        )
        entry = builder.block
        vector_check = builder.append_basic_block("first_equal.vector_check")
        vector_body = builder.append_basic_block("first_equal.vector_body")
        vector_found = builder.append_basic_block("first_equal.vector_found")
        scalar_check = builder.append_basic_block("first_equal.scalar_check")
        scalar_body = builder.append_basic_block("first_equal.scalar_body")
        done = builder.append_basic_block("first_equal.done")
        builder.branch(vector_check)

        builder.position_at_end(vector_check)  # while z + lanes <= n
        z = builder.phi(i64)
        z.add_incoming(ir.Constant(i64, 0), entry)
        z_next = builder.add(z, ir.Constant(i64, lanes))
        builder.cbranch(builder.icmp_signed("<=", z_next, n), vector_body, scalar_check)

        builder.position_at_end(vector_body)
        pointer = builder.bitcast(builder.gep(data, [z]), vec.as_pointer())
        equal = builder.icmp_unsigned("==", builder.load(pointer, align=1), splat)
        mask = builder.bitcast(equal, bits)
        z.add_incoming(z_next, vector_body)
        hit = builder.icmp_unsigned("!=", mask, ir.Constant(bits, 0))
        builder.cbranch(hit, vector_found, vector_check)

        builder.position_at_end(vector_found)
        cttz = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(bits, [bits, ir.IntType(1)]),
            f"llvm.cttz.i{lanes}",
        )
        lane = builder.call(cttz, [mask, ir.Constant(ir.IntType(1), 1)])
        found = builder.add(z, builder.zext(lane, i64))
        builder.branch(done)

        builder.position_at_end(scalar_check)  # while z < n and data[z] != key
        zs = builder.phi(i64)
        zs.add_incoming(z, vector_check)
        builder.cbranch(builder.icmp_signed("<", zs, n), scalar_body, done)

        builder.position_at_end(scalar_body)
        value = builder.load(builder.gep(data, [zs]))
        zs.add_incoming(builder.add(zs, ir.Constant(i64, 1)), scalar_body)
        builder.cbranch(builder.icmp_unsigned("==", value, key), done, scalar_check)

        builder.position_at_end(done)
        result = builder.phi(i64)
        result.add_incoming(found, vector_found)
        result.add_incoming(zs, scalar_check)
        result.add_incoming(zs, scalar_body)
        return result

    return types.int64(rows, i, key), codegen


@intrinsic
def _wide_vectors(typingctx):
    """Let LLVM vectorise the calling function with 512-bit vectors where the CPU has
    them (on AVX-512 CPUs it prefers 256 bits by default; 512 made pass 1 1.15-1.2x
    faster here, as in the C core's AVX-512 kernels). A hint in the function's
    attributes: no code, and nothing changes if llvmlite no longer accepts it."""

    def codegen(context, builder, signature, args):
        try:  # llvmlite checks names against a list without key-value attributes
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except (AttributeError, TypeError):
            pass
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _half_value_f16c(typingctx, h):
    """IEEE binary16 bits (uint16) to float64 by LLVM's own conversion (vcvtph2ps where
    the CPU has F16C), exactly."""
    if h != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.DoubleType())

    return types.float64(h), codegen


@intrinsic
def _half_value_f16c_via_float(typingctx, h):
    """_half_value_f16c for pass 2, where LLVM would convert halves straight to float64
    with vcvtph2pd (AVX512-FP16), half the speed of vcvtph2ps and vcvtps2pd here (a dot
    product in L1: 0.29 vs 0.21 ns per value). Adding +0.0 to the float keeps it a float
    (not an identity for -0.0, so LLVM keeps it); it only turns -0.0 into +0.0, which no
    sum of the products can tell apart."""
    if h != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        f = builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        f = builder.fadd(f, ir.Constant(ir.FloatType(), 0.0))
        return builder.fpext(f, ir.DoubleType())

    return types.float64(h), codegen


@numba.njit(**_ROW)
def _half_value_bits(h):
    """IEEE binary16 bits (uint16) to float64, exactly and without branches: normal
    halves rebias the exponent, subnormals are m * 2^-24, inf and NaN carry over."""
    u = np.int64(h)
    e = (u >> 10) & 0x1F
    m = u & 0x3FF
    normal = ((e + 1008) << 52) | (m << 42)
    special = (0x7FF << 52) | (m << 42)
    magnitude = _f64_of_bits(special if e == 31 else normal)
    subnormal = np.float64(np.int32(m)) * 5.9604644775390625e-08
    magnitude = subnormal if e == 0 else magnitude
    return -magnitude if u & 0x8000 else magnitude


def _target_has_f16c():
    """Whether Numba compiles for a CPU with F16C (without it LLVM would convert halves
    through a runtime library call that the JIT may not find)."""
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return "+f16c" in (numba.config.CPU_FEATURES or "")
    return bool(llvm.get_host_cpu_features().get("f16c", False))


_half_value = _half_value_f16c if _target_has_f16c() else _half_value_bits
# the small-row kernels' conversion of halves (read when they are compiled)
_HALVES_BY_BITS = not _target_has_f16c()
_half_product_value = _half_value_f16c_via_float if _target_has_f16c() else _half_value_bits


@intrinsic
def _bfloat16_value(typingctx, b):
    """bfloat16 bits (int16) to float64: the float32 whose bits are the 16 bits moved up
    16 (exact, NaN and infinities included), widened. LLVM vectorises it (AVX2: the
    bits interleaved under zeros by vpunpcklwd, then vcvtps2pd), as float32 input."""
    if b != types.int16:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.zext(args[0], i32), ir.Constant(i32, 16))
        return builder.fpext(builder.bitcast(bits, ir.FloatType()), ir.DoubleType())

    return types.float64(b), codegen


def _as_float64(half_to_float64, doc):
    """A function taking an element to float64, floats as they are, float16 bit
    patterns (uint16) through ``half_to_float64`` and bfloat16 bit patterns (int16)
    through _bfloat16_value: a stub and its Numba overload."""

    def stub(x):
        pass

    stub.__doc__ = doc

    @overload(stub)
    def _overload(x):
        if isinstance(x, types.Float):
            return lambda x: np.float64(x)
        if x == types.uint16:
            return lambda x: half_to_float64(x)
        if x == types.int16:
            return lambda x: _bfloat16_value(x)
        return None

    return stub


_value = _as_float64(_half_value, "An element as float64.")
_product_value = _as_float64(_half_product_value, "_value, for a product in pass 2.")


def _negative_key(k):
    """True when the key is that of a value below zero (sign bit set, not -0.0)."""


@overload(_negative_key)
def _negative_key_overload(k):
    if isinstance(k, types.Integer) and not k.signed:
        sign = 1 << (k.bitwidth - 1)
        dtype = np.dtype(f"uint{k.bitwidth}")
        return lambda k: k > dtype.type(sign)
    return None


# ---------------------------------------------------------------------------------------
# Rows


@numba.njit(**_FAST)
def _add_row(rows, i, joint, y):
    """Add rows[i] to joint[y] in one read; (row sum, maximum of the unsigned keys,
    maximum of the signed keys). Some value is negative iff the first is above SIGN;
    when a value is positive the second is the key of the largest one.

    Rows are passed as (array, index), here and below: a row view would cost atomic
    reference-count updates on the array, shared by the threads, twice per row."""
    _wide_vectors()
    u_max = _key(rows[i, 0])
    s_max = _skey(rows[i, 0])
    s = 0.0
    for z in range(rows.shape[1]):
        x = rows[i, z]
        v = _value(x)
        s += v
        joint[y, z] += v
        k = _key(x)
        u_max = k if k > u_max else u_max
        sk = _skey(x)
        s_max = sk if sk > s_max else s_max
    return s, u_max, s_max


# ---------------------------------------------------------------------------------------
# Small rows (at most SMALL_Z values): one row as 1 to 4 quarters of 4 float64 lanes, in
# vectors written out in LLVM IR. Plain Numba loops over so few values stay scalar (the
# loop vectoriser does not take a loop of 10, SLP does not take sums or first maxima
# without reordering them, and the joint stores stop it from moving the row's loads):
# pass 1 at Z=10 had run at 2.9x the compiled backend's time, pass 2 at 1.4x. As in the
# C core's small-row groups, a row is read as ceil(Z / 4) quarters from its start, the
# lanes past it cleared; rows near the end of a block, where that read would leave it,
# are copied to a zeroed buffer first. Its sum is reduced in one fixed order in both
# passes, quarters then lanes: t = (q0 + q1) + (q2 + q3) (as many as there are),
# s = (t0 + t2) + (t1 + t3), so a row passes or fails alike in each; the dot product of
# pass 2 the same way.

_F64 = ir.DoubleType()
_I1 = ir.IntType(1)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V4D = ir.VectorType(_F64, 4)
_V4B = ir.VectorType(_I1, 4)
_BYTE_POINTER = ir.IntType(8).as_pointer()


def _ir_shuffle(builder, v, lanes):
    """The lanes of the vector v in the given order."""
    mask = ir.Constant(ir.VectorType(_I32, len(lanes)), list(lanes))
    return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), mask)


def _ir_splat(builder, value, count):
    """A vector of ``count`` copies of the scalar ``value``."""
    v = builder.insert_element(
        ir.Constant(ir.VectorType(value.type, count), ir.Undefined),
        value,
        ir.Constant(_I32, 0),
    )
    return _ir_shuffle(builder, v, [0] * count)


def _ir_tree(op, quarters):
    """(q0 op q1) op (q2 op q3), for 1 to 4 quarters (the same order in both passes)."""
    if len(quarters) == 1:
        return quarters[0]
    if len(quarters) == 3:
        return op(op(quarters[0], quarters[1]), quarters[2])
    pairs = [op(quarters[k], quarters[k + 1]) for k in range(0, len(quarters), 2)]
    return pairs[0] if len(pairs) == 1 else op(pairs[0], pairs[1])


def _ir_across(builder, op, t):
    """(t0 op t2) op (t1 op t3) in every lane of the 4-lane vector t."""
    t = op(t, _ir_shuffle(builder, t, [2, 3, 0, 1]))
    return op(t, _ir_shuffle(builder, t, [1, 0, 3, 2]))


def _ir_sum(builder, quarters):
    """The sum of the lanes of the quarters, in the order of the section's comment."""
    total = _ir_across(builder, builder.fadd, _ir_tree(builder.fadd, quarters))
    return builder.extract_element(total, ir.Constant(_I32, 0))


def _ir_float_values(builder, raw, dtype):
    """A vector of elements of ``dtype`` (float16 as uint16 bits, bfloat16 as int16
    bits) as float64 lanes, exactly, as _value converts one."""
    count = raw.type.count
    floats = ir.VectorType(ir.FloatType(), count)
    if dtype == types.float64:
        return raw
    if dtype == types.float32:
        return builder.fpext(raw, ir.VectorType(_F64, count))
    if dtype == types.int16:  # bfloat16: the bits moved up 16 are the float32
        wide = builder.shl(
            builder.zext(raw, ir.VectorType(_I32, count)),
            ir.Constant(ir.VectorType(_I32, count), [16] * count),
        )
        return builder.fpext(builder.bitcast(wide, floats), ir.VectorType(_F64, count))
    if _HALVES_BY_BITS:  # no F16C: _half_value_bits, lane by lane
        return _ir_half_bits(builder, raw)
    # F16C, through float32 as _half_value_f16c_via_float (+0.0 keeps LLVM from
    # converting straight to float64; it only turns -0.0 into +0.0)
    f = builder.fpext(builder.bitcast(raw, ir.VectorType(ir.HalfType(), count)), floats)
    f = builder.fadd(f, ir.Constant(floats, [0.0] * count))
    return builder.fpext(f, ir.VectorType(_F64, count))


def _ir_half_bits(builder, raw):
    """IEEE binary16 bits to float64 lanes by integer arithmetic (_half_value_bits)."""
    count = raw.type.count
    v64 = ir.VectorType(_I64, count)

    def k(c):
        return ir.Constant(v64, [c] * count)

    u = builder.zext(raw, v64)
    e = builder.and_(builder.lshr(u, k(10)), k(0x1F))
    m = builder.and_(u, k(0x3FF))
    m42 = builder.shl(m, k(42))
    normal = builder.or_(builder.shl(builder.add(e, k(1008)), k(52)), m42)
    special = builder.or_(k(0x7FF << 52), m42)
    bits = builder.select(builder.icmp_unsigned("==", e, k(31)), special, normal)
    subnormal = builder.fmul(
        builder.sitofp(m, ir.VectorType(_F64, count)),
        ir.Constant(ir.VectorType(_F64, count), [5.9604644775390625e-08] * count),
    )
    magnitude = builder.select(
        builder.icmp_unsigned("==", e, k(0)),
        builder.bitcast(subnormal, v64),
        bits,
    )
    sign = builder.shl(builder.and_(u, k(0x8000)), k(48))
    return builder.bitcast(builder.or_(magnitude, sign), ir.VectorType(_F64, count))


def _ir_quarters(context, builder, rows_type, rows, i, n_quarters):
    """Row i of a C-contiguous 2-D array as ``n_quarters`` <4 x double>, the lanes at or
    past the row's length zero, and those lanes' masks (true: in the row). Reads
    4 * n_quarters elements from the row's start, whatever its length."""
    ary = context.make_array(rows_type)(context, builder, rows)
    n = builder.extract_value(ary.shape, 1)
    elem = context.get_data_type(rows_type.dtype)
    start = builder.gep(ary.data, [builder.mul(i, n)])
    width = _ir_splat(builder, n, 4)
    quarters, keeps = [], []
    for j in range(n_quarters):
        pointer = builder.bitcast(
            builder.gep(start, [ir.Constant(_I64, 4 * j)]),
            ir.VectorType(elem, 4).as_pointer(),
        )
        q = _ir_float_values(builder, builder.load(pointer, align=1), rows_type.dtype)
        lanes = ir.Constant(ir.VectorType(_I64, 4), [4 * j + k for k in range(4)])
        keep = builder.icmp_signed("<", lanes, width)
        quarters.append(builder.select(keep, q, ir.Constant(_V4D, [0.0] * 4)))
        keeps.append(keep)
    return quarters, keeps


def _ir_any_negative(builder, quarters):
    """Whether a lane is below zero (-0.0 and NaN are not)."""
    zero = ir.Constant(_V4D, [0.0] * 4)
    below = _ir_tree(builder.or_, [builder.fcmp_ordered("<", q, zero) for q in quarters])
    four = ir.IntType(4)
    return builder.icmp_unsigned("!=", builder.bitcast(below, four), ir.Constant(four, 0))


def _ir_first_max(builder, quarters, tagged):
    """The first lane holding the largest value when that value is above zero, else -1
    (a row of zeros, or a row that fails its checks: NaN lanes are never taken).

    ``tagged`` (values widened from float32, float16 or bfloat16: the low 29 bits of
    each float64 are zero), as the C core's groups: the lane's 15 - index put in its
    low 4 bits, the maximum of those keys (positive doubles order as their bits, ties
    to the lowest lane) gives the index directly. A key above zero is never subnormal
    (every float32 is a normal float64), so denormal modes cannot change it. Else the
    maximum, then the first lane equal to it."""

    def larger(a, b):  # vmaxpd
        return builder.select(builder.fcmp_ordered(">", a, b), a, b)

    if tagged:
        v4i = ir.VectorType(_I64, 4)
        keys = [
            builder.bitcast(
                builder.or_(
                    builder.bitcast(q, v4i),
                    ir.Constant(v4i, [15 - 4 * j - k for k in range(4)]),
                ),
                _V4D,
            )
            for j, q in enumerate(quarters)
        ]
        top = _ir_across(builder, larger, _ir_tree(larger, keys))
        top = builder.extract_element(top, ir.Constant(_I32, 0))
        low_bits = builder.and_(builder.bitcast(top, _I64), ir.Constant(_I64, 15))
        at = builder.sub(ir.Constant(_I64, 15), low_bits)
        positive = builder.fcmp_ordered(">", top, ir.Constant(_F64, 2.0**-1000))
        return builder.select(positive, at, ir.Constant(_I64, -1))
    top = _ir_across(builder, larger, _ir_tree(larger, quarters))
    mask = ir.Constant(_I64, 0)
    for j, q in enumerate(quarters):
        equal = builder.bitcast(builder.fcmp_ordered("==", q, top), ir.IntType(4))
        mask = builder.or_(
            mask, builder.shl(builder.zext(equal, _I64), ir.Constant(_I64, 4 * j))
        )
    cttz = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I64, [_I64, _I1]), "llvm.cttz.i64"
    )
    at = builder.call(cttz, [mask, ir.Constant(_I1, 0)])
    positive = builder.fcmp_ordered(
        ">", builder.extract_element(top, ir.Constant(_I32, 0)), ir.Constant(_F64, 0.0)
    )
    return builder.select(positive, at, ir.Constant(_I64, -1))


def _ir_masked_load(builder, pointer, keep):
    fn = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(_V4D, [_BYTE_POINTER, _I32, _V4B, _V4D]),
        "llvm.masked.load.v4f64.p0",
    )
    pointer = builder.bitcast(pointer, _BYTE_POINTER)
    return builder.call(
        fn, [pointer, ir.Constant(_I32, 8), keep, ir.Constant(_V4D, [0.0] * 4)]
    )


def _ir_masked_store(builder, value, pointer, keep):
    fn = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(ir.VoidType(), [_V4D, _BYTE_POINTER, _I32, _V4B]),
        "llvm.masked.store.v4f64.p0",
    )
    pointer = builder.bitcast(pointer, _BYTE_POINTER)
    builder.call(fn, [value, pointer, ir.Constant(_I32, 8), keep])


def _ir_quarter_pointer(builder, row, j):
    return builder.bitcast(builder.gep(row, [ir.Constant(_I64, 4 * j)]), _V4D.as_pointer())


def _ir_by_quarters(builder, n, emit, result_types):
    """``emit(n_quarters)`` for n_quarters = ceil(n / 4) (1 to 4, a branch per row that
    is always taken the same way), its results merged."""
    fn = builder.function
    blocks = [fn.append_basic_block(f"small.quarters{k}") for k in range(1, 5)]
    done = fn.append_basic_block("small.done")
    n_quarters = builder.ashr(builder.add(n, ir.Constant(_I64, 3)), ir.Constant(_I64, 2))
    switch = builder.switch(n_quarters, blocks[3])
    for k in range(3):
        switch.add_case(ir.Constant(_I64, k + 1), blocks[k])
    results = []
    for k, block in enumerate(blocks):
        builder.position_at_end(block)
        values = emit(k + 1)
        results.append((builder.block, values))
        builder.branch(done)
    builder.position_at_end(done)
    merged = []
    for r, ty in enumerate(result_types):
        phi = builder.phi(ty)
        for block, values in results:
            phi.add_incoming(values[r], block)
        merged.append(phi)
    return merged


def _small_row_arrays(rows, i, other, y):
    """The typing checks of _small_add and _small_dot."""
    return (
        isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and rows.dtype in (types.float32, types.float64, types.uint16, types.int16)
        and isinstance(other, types.Array)
        and other.ndim == 2
        and other.layout == "C"
        and other.dtype == types.float64
        and isinstance(i, types.Integer)
        and isinstance(y, types.Integer)
    )


@intrinsic
def _small_add(typingctx, rows, i, dest, y):
    """Add row i of ``rows`` (at most SMALL_Z values, 4 * ceil(Z / 4) of them readable
    from its start) to row y of ``dest`` (float64; when it has fewer columns than the
    row's quarters, the last quarter is masked); (row sum, whether a value is below
    zero, first index of the maximum or -1 if no value is above zero)."""
    if not _small_row_arrays(rows, i, dest, y):
        return None
    result = types.Tuple((types.float64, types.boolean, types.int64))

    def codegen(context, builder, signature, args):
        rows_v, _, dest_v, _ = args
        i_v, y_v = (
            context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 3)
        )
        n = builder.extract_value(
            context.make_array(signature.args[0])(context, builder, rows_v).shape, 1
        )
        out = context.make_array(signature.args[2])(context, builder, dest_v)
        width = builder.extract_value(out.shape, 1)
        row = builder.gep(out.data, [builder.mul(y_v, width)])

        def emit(n_quarters):
            quarters, keeps = _ir_quarters(
                context, builder, signature.args[0], rows_v, i_v, n_quarters
            )
            last = n_quarters - 1
            for j in range(last):  # within the row
                pointer = _ir_quarter_pointer(builder, row, j)
                total = builder.fadd(builder.load(pointer, align=8), quarters[j])
                builder.store(total, pointer, align=8)
            pointer = _ir_quarter_pointer(builder, row, last)
            full = builder.icmp_signed(">=", width, ir.Constant(_I64, 4 * n_quarters))
            with builder.if_else(full) as (padded, masked):
                with padded:
                    total = builder.fadd(builder.load(pointer, align=8), quarters[last])
                    builder.store(total, pointer, align=8)
                with masked:
                    old = _ir_masked_load(builder, pointer, keeps[last])
                    _ir_masked_store(
                        builder, builder.fadd(old, quarters[last]), pointer, keeps[last]
                    )
            return (
                _ir_sum(builder, quarters),
                _ir_any_negative(builder, quarters),
                _ir_first_max(builder, quarters, signature.args[0].dtype != types.float64),
            )

        values = _ir_by_quarters(builder, n, emit, [_F64, _I1, _I64])
        return context.make_tuple(builder, signature.return_type, values)

    return result(rows, i, dest, y), codegen


@intrinsic
def _small_dot(typingctx, rows, i, conditional, y):
    """(sum_z conditional[y, z] * rows[i, z], row sum, whether a value is below zero)
    for a row of at most SMALL_Z values (4 * ceil(Z / 4) of them readable from its
    start); ``conditional`` float64 (Y, Z), its rows' last quarter read masked."""
    if not _small_row_arrays(rows, i, conditional, y):
        return None
    result = types.Tuple((types.float64, types.float64, types.boolean))

    def codegen(context, builder, signature, args):
        rows_v, _, cond_v, _ = args
        i_v, y_v = (
            context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 3)
        )
        n = builder.extract_value(
            context.make_array(signature.args[0])(context, builder, rows_v).shape, 1
        )
        cond = context.make_array(signature.args[2])(context, builder, cond_v)
        width = builder.extract_value(cond.shape, 1)
        row = builder.gep(cond.data, [builder.mul(y_v, width)])

        def emit(n_quarters):
            quarters, keeps = _ir_quarters(
                context, builder, signature.args[0], rows_v, i_v, n_quarters
            )
            last = n_quarters - 1
            c = [
                builder.load(_ir_quarter_pointer(builder, row, j), align=8)
                for j in range(last)
            ]
            c.append(
                _ir_masked_load(
                    builder, _ir_quarter_pointer(builder, row, last), keeps[last]
                )
            )
            products = [builder.fmul(q, cj) for q, cj in zip(quarters, c, strict=True)]
            return (
                _ir_sum(builder, products),
                _ir_sum(builder, quarters),
                _ir_any_negative(builder, quarters),
            )

        values = _ir_by_quarters(builder, n, emit, [_F64, _F64, _I1])
        return context.make_tuple(builder, signature.return_type, values)

    return result(rows, i, conditional, y), codegen


@numba.njit(**_ROW)
def _first_max(rows, i):
    """The first index of the largest value of row i (np.argmax: -0.0 ties with 0.0)."""
    hi = _value(rows[i, 0])
    at = 0
    for z in range(1, rows.shape[1]):
        v = _value(rows[i, z])
        at = z if v > hi else at
        hi = v if v > hi else hi
    return at


@numba.njit(**_FAST)
def _add_row_fixed(rows, i, part, y):
    """_add_row for float16 rows into an int32 partial: part[y] += row * 2^24, exact (a
    half is a multiple of 2^-24, and a value of a valid row is below 1.5); the row sum
    is taken in float32 (_accumulate_rows takes it again in float64 near the
    tolerance)."""
    _wide_vectors()
    u_max = _key(rows[i, 0])
    s_max = _skey(rows[i, 0])
    s = np.float32(0.0)
    for z in range(rows.shape[1]):
        x = rows[i, z]
        v = np.float32(_value(x))
        s += v
        part[y, z] += np.int32(v * np.float32(16777216.0))
        k = _key(x)
        u_max = k if k > u_max else u_max
        sk = _skey(x)
        s_max = sk if sk > s_max else s_max
    return np.float64(s), u_max, s_max


@numba.njit(**_ROW)
def _flush_fixed(part, joint, y):
    """The partial of class y into its float64 joint row, exactly; zeroes the partial."""
    for z in range(part.shape[1]):
        joint[y, z] += part[y, z] * 5.9604644775390625e-08  # 2^-24
        part[y, z] = 0


@numba.njit(**_ROW)
def _has_nonfinite(rows, i):
    for z in range(rows.shape[1]):
        if not math.isfinite(_value(rows[i, z])):
            return True
    return False


@numba.njit(**_FAST)
def _sum_first(out, n):
    s = 0.0
    for z in range(n):
        s += out[0, z]
    return s


@numba.njit(cache=True, nogil=True)
def _exps_libm(rows, i, out, hi):
    """out[0] = exp(rows[i] - hi) by libm (rows spanning more than EXP_FAST_RANGE, -inf
    entries included), and their sum."""
    n = rows.shape[1]
    for z in range(n):
        out[0, z] = math.exp(_value(rows[i, z]) - hi)
    return _sum_first(out, n)


@numba.njit(**_FAST)
def _add_scaled(out, joint, y, scale):
    """joint[y] += out[0] * scale."""
    _wide_vectors()
    for z in range(joint.shape[1]):
        joint[y, z] += out[0, z] * scale


@numba.njit(**_FAST)
def _dot(rows, i, conditional, y):
    """sum_z conditional[y, z] * rows[i, z] in float64."""
    _wide_vectors()
    s = 0.0
    for z in range(rows.shape[1]):
        s += conditional[y, z] * _product_value(rows[i, z])
    return s


@numba.njit(**_FAST)
def _dot_checked(rows, i, conditional, y):
    """_dot, with what pass 1 checks a row of probabilities by, in the same read:
    (dot product, row sum, maximum of the unsigned keys; see _add_row)."""
    _wide_vectors()
    u_max = _key(rows[i, 0])
    p = 0.0
    s = 0.0
    for z in range(rows.shape[1]):
        x = rows[i, z]
        v = _product_value(x)
        p += conditional[y, z] * v
        s += v
        k = _key(x)
        u_max = k if k > u_max else u_max
    return p, s, u_max


# ---------------------------------------------------------------------------------------
# Wide rows: float32 and float64 rows of probabilities of more than SMALL_Z values, 16
# values a step in explicit vectors.
# LLVM's vectoriser took _add_row and _dot_checked 8 float32 values a step (4 float64
# lanes, interleaved twice: its register estimate allowed no more), its key maxima in
# 128-bit vectors; the C core's AVX2 rows take 16, with the minimum and maximum as
# float32. Here each step reads 16 values into four float64 quarters (four sums, four
# dot products, four joint quarters) and, for float32, takes the minimum and maximum
# of two 8-lane float32 vectors (float64: of the quarters); then a half step of 8 if
# 8 or more values remain (into the first two of each), the last ones one at a time.
# Both passes sum a row in the same order: the four quarter sums as (s0 + s1) +
# (s2 + s3), their lanes as (t0 + t2) + (t1 + t3), then the remaining values in order.


def _ir_min(builder, a, b):  # minps / minpd: a < b ? a : b
    return builder.select(builder.fcmp_ordered("<", a, b), a, b)


def _ir_max(builder, a, b):  # maxps / maxpd: a > b ? a : b
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


def _ir_lanes(builder, v, op):
    """op over the lanes of v (a tree), as a scalar."""
    while v.type.count > 1:
        half = v.type.count // 2
        low = _ir_shuffle(builder, v, range(half))
        high = _ir_shuffle(builder, v, range(half, 2 * half))
        v = op(low, high)
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _ir_fmuladd(builder, a, b, c):
    """a * b + c, fused where the CPU has FMA (llvm.fmuladd)."""
    fn = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(a.type, [a.type] * 3),
        f"llvm.fmuladd.{'v4f64' if isinstance(a.type, ir.VectorType) else 'f64'}",
    )
    return builder.call(fn, [a, b, c])


def _wide_row_codegen(pass_one):
    """The codegen of _add_row_wide (pass 1: the row added to joint[y]; returns (row
    sum, minimum, bits of the maximum)) or _dot_wide (pass 2: returns (dot product with
    conditional[y], row sum, minimum))."""

    def codegen(context, builder, signature, args):
        rows_type, _, other_type, _ = signature.args
        i_v, y_v = (
            context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 3)
        )
        ary = context.make_array(rows_type)(context, builder, args[0])
        n = builder.extract_value(ary.shape, 1)
        start = builder.gep(ary.data, [builder.mul(i_v, n)])
        other = context.make_array(other_type)(context, builder, args[2])
        width = builder.extract_value(other.shape, 1)
        other_row = builder.gep(other.data, [builder.mul(y_v, width)])
        single = rows_type.dtype == types.float32
        elem = ir.FloatType() if single else _F64
        first = builder.load(start)
        zero = ir.Constant(_V4D, [0.0] * 4)
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        dots = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        # float32: two 8-lane minima and maxima; float64: two quarters each
        extreme = _ir_splat(builder, first, 8 if single else 4)
        lows = [cgutils.alloca_once_value(builder, extreme) for _ in range(2)]
        highs = [cgutils.alloca_once_value(builder, extreme) for _ in range(2)]

        def step(z, n_halves):
            """The 8 * n_halves values from z into the accumulators (and joint)."""
            at = builder.gep(start, [z])
            if single:
                halves = [
                    builder.load(
                        builder.bitcast(
                            builder.gep(at, [ir.Constant(_I64, 8 * h)]),
                            ir.VectorType(elem, 8).as_pointer(),
                        ),
                        align=1,
                    )
                    for h in range(n_halves)
                ]
                quarters = [
                    builder.fpext(
                        _ir_shuffle(
                            builder, halves[k // 2], range(4 * (k % 2), 4 * (k % 2) + 4)
                        ),
                        _V4D,
                    )
                    for k in range(2 * n_halves)
                ]
                lows_in = highs_in = halves
            else:  # float64: two quarters into each minimum and maximum
                quarters = [
                    builder.load(_ir_quarter_pointer(builder, at, k), align=1)
                    for k in range(2 * n_halves)
                ]
                pairs = [quarters[2 * h : 2 * h + 2] for h in range(n_halves)]
                lows_in = [_ir_min(builder, *pair) for pair in pairs]
                highs_in = [_ir_max(builder, *pair) for pair in pairs]
            out = builder.gep(other_row, [z])
            for k, q in enumerate(quarters):
                builder.store(builder.fadd(builder.load(sums[k]), q), sums[k])
                pointer = _ir_quarter_pointer(builder, out, k)
                if pass_one:
                    total = builder.fadd(builder.load(pointer, align=1), q)
                    builder.store(total, pointer, align=1)
                else:
                    c = builder.load(pointer, align=1)
                    builder.store(
                        _ir_fmuladd(builder, q, c, builder.load(dots[k])), dots[k]
                    )
            for h in range(n_halves):
                builder.store(_ir_min(builder, builder.load(lows[h]), lows_in[h]), lows[h])
                builder.store(
                    _ir_max(builder, builder.load(highs[h]), highs_in[h]), highs[h]
                )

        steps = builder.and_(n, ir.Constant(_I64, ~15))
        with cgutils.for_range_slice(
            builder, ir.Constant(_I64, 0), steps, ir.Constant(_I64, 16), inc=True
        ) as (z, _):
            step(z, 2)
        # 8 more values when there are (the C core's half step)
        with builder.if_then(
            builder.icmp_signed(
                "!=", builder.and_(n, ir.Constant(_I64, 8)), ir.Constant(_I64, 0)
            )
        ):
            step(steps, 1)
        steps = builder.and_(n, ir.Constant(_I64, ~7))
        total = cgutils.alloca_once_value(
            builder, _ir_sum(builder, [builder.load(a) for a in sums])
        )
        dot = cgutils.alloca_once_value(
            builder, _ir_sum(builder, [builder.load(a) for a in dots])
        )
        low = cgutils.alloca_once_value(
            builder,
            _ir_lanes(
                builder,
                _ir_min(builder, *[builder.load(a) for a in lows]),
                lambda a, b: _ir_min(builder, a, b),
            ),
        )
        high = cgutils.alloca_once_value(
            builder,
            _ir_lanes(
                builder,
                _ir_max(builder, *[builder.load(a) for a in highs]),
                lambda a, b: _ir_max(builder, a, b),
            ),
        )
        with cgutils.for_range_slice(builder, steps, n, ir.Constant(_I64, 1), inc=True) as (
            z,
            _,
        ):
            x = builder.load(builder.gep(start, [z]))
            v = builder.fpext(x, _F64) if single else x
            builder.store(builder.fadd(builder.load(total), v), total)
            builder.store(_ir_min(builder, builder.load(low), x), low)
            builder.store(_ir_max(builder, builder.load(high), x), high)
            pointer = builder.gep(other_row, [z])
            if pass_one:
                builder.store(builder.fadd(builder.load(pointer), v), pointer)
            else:
                product = _ir_fmuladd(builder, v, builder.load(pointer), builder.load(dot))
                builder.store(product, dot)
        low_v = builder.load(low)
        low_v = builder.fpext(low_v, _F64) if single else low_v
        if pass_one:
            key = builder.bitcast(builder.load(high), ir.IntType(32 if single else 64))
            values = [builder.load(total), low_v, key]
        else:
            values = [builder.load(dot), builder.load(total), low_v]
        return context.make_tuple(builder, signature.return_type, values)

    return codegen


def _wide_row_arrays(rows, i, other, y):
    return (
        isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and rows.dtype in (types.float32, types.float64)
        and isinstance(other, types.Array)
        and other.ndim == 2
        and other.layout == "C"
        and other.dtype == types.float64
        and isinstance(i, types.Integer)
        and isinstance(y, types.Integer)
    )


@intrinsic
def _add_row_wide(typingctx, rows, i, joint, y):
    """Add row i of float32 or float64 ``rows`` (at least 1 value) to joint[y]; (row
    sum, minimum, bit pattern of the maximum as a signed integer of the element's
    width). NaN never enters the minimum or maximum of a row whose sum is finite."""
    if not _wide_row_arrays(rows, i, joint, y):
        return None
    key = types.int32 if rows.dtype == types.float32 else types.int64
    result = types.Tuple((types.float64, types.float64, key))
    return result(rows, i, joint, y), _wide_row_codegen(pass_one=True)


@intrinsic
def _dot_wide(typingctx, rows, i, conditional, y):
    """(sum_z conditional[y, z] * rows[i, z], row sum, minimum) for a float32 or
    float64 row of at least 1 value; the sum as _add_row_wide takes it, bit for bit."""
    if not _wide_row_arrays(rows, i, conditional, y):
        return None
    result = types.Tuple((types.float64, types.float64, types.float64))
    return result(rows, i, conditional, y), _wide_row_codegen(pass_one=False)


# ---------------------------------------------------------------------------------------
# Logits rows, written out in LLVM IR as the C core's AVX2 softmax rows
# (leepfast_softmax.inc, leepfast_avx2.inc). Each row is read twice: a scan in its own
# type (_logits_scan: the maximum, the minimum and an unordered compare for NaN, eight
# floats or four doubles a vector, two vectors a step; float16 and bfloat16 widened to
# float32 exactly, never to float64), then, for a row spanning at most EXP_FAST_RANGE,
# one loop of exps four doubles a vector, two a step, into two sums: pass 1 stores the
# exps (_exps_fast), pass 2 takes their dot product with conditional[y] beside the sum
# and stores nothing (_dots_fast). Plain loops had made five passes over each row (a
# float64 copy with a v * 0 check, the range, the exps, the sum, the dot product).
#
# The exp (_ir_exp_fast, the C core's lf_exp_fast_avx2 written again): x = k ln 2 + r,
# |r| <= ln(2) / 2 (k by the 1.5 * 2^52 shifter, ln 2 in two parts), exp(r) as
# 1 + r + r^2 q(r), q of degree 9 with the minimax coefficients of the C core (below
# 1.2e-17 relative) in Estrin's form, 2^k added to the result's exponent bits; only for
# -EXP_FAST_RANGE <= x <= 0, where the result is a normal number. No fast-math flags:
# the shifter's rounding and the two-part reduction stay as written, the multiply-adds
# fused by llvm.fmuladd where the CPU has FMA.

EXP_FAST_RANGE = 707.0  # exp(-707) = 2^-1020: normal, with 2 bits to spare
_SHIFTER = 6755399441055744.0  # 1.5 * 2^52
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# c2 .. c11 of exp(r) = 1 + r + c2 r^2 + ... + c11 r^11 (the C core's lf_exp_poly_avx2)
_EXP_MINIMAX = tuple(
    float.fromhex(c)
    for c in (
        "0x1.000000000000ap-1",
        "0x1.55555555554fap-3",
        "0x1.555555555088cp-5",
        "0x1.1111111127b9bp-7",
        "0x1.6c16c184266b4p-10",
        "0x1.a01a012a69cf4p-13",
        "0x1.a0199a16e68edp-16",
        "0x1.71df253a08086p-19",
        "0x1.28ad689e8aee0p-22",
        "0x1.ad7f7b1096349p-26",
    )
)


def _ir_like(t, value):
    """The constant ``value`` of type t (a scalar, or a vector of its copies)."""
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [value] * t.count)
    return ir.Constant(t, value)


def _ir_fma(builder, a, b, c):
    """a * b + c, fused where the CPU has FMA (llvm.fmuladd), any double type."""
    name = f"v{a.type.count}f64" if isinstance(a.type, ir.VectorType) else "f64"
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(a.type, [a.type] * 3), f"llvm.fmuladd.{name}"
    )
    return builder.call(fn, [a, b, c])


def _ir_exp_fast(builder, x):
    """exp(x) of a double or a vector of doubles, -EXP_FAST_RANGE <= x <= 0 only."""
    ints = ir.VectorType(_I64, x.type.count) if isinstance(x.type, ir.VectorType) else _I64

    def k(v):
        return _ir_like(x.type, v)

    t = _ir_fma(builder, x, k(_LOG2E), k(_SHIFTER))
    kd = builder.fsub(t, k(_SHIFTER))
    r = _ir_fma(builder, kd, k(-_LN2_HI), x)
    r = _ir_fma(builder, kd, k(-_LN2_LO), r)
    c = [k(v) for v in _EXP_MINIMAX]  # c[j] is the coefficient of r^(j + 2)
    r2 = builder.fmul(r, r)
    r4 = builder.fmul(r2, r2)
    c23 = _ir_fma(builder, c[1], r, c[0])
    c45 = _ir_fma(builder, c[3], r, c[2])
    c67 = _ir_fma(builder, c[5], r, c[4])
    c89 = _ir_fma(builder, c[7], r, c[6])
    c1011 = _ir_fma(builder, c[9], r, c[8])
    high = _ir_fma(builder, _ir_fma(builder, c1011, r2, c89), r2, c67)
    q = _ir_fma(builder, high, r4, _ir_fma(builder, c45, r2, c23))
    p = _ir_fma(builder, q, r2, builder.fadd(r, k(1.0)))
    # k (>= -1021) is in the shifter's low bits: shifted to the exponent field, the
    # sum of the bits is k plus p's exponent
    scale = builder.shl(builder.bitcast(t, ints), _ir_like(ints, 52))
    return builder.bitcast(builder.add(builder.bitcast(p, ints), scale), x.type)


@intrinsic
def _exp_fast(typingctx, x):
    """_ir_exp_fast of one float64 (for tests: the rows' exp, value for value)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return _ir_exp_fast(builder, args[0])

    return types.float64(x), codegen


def _ir_row(context, builder, rows_type, rows, i):
    """(pointer to the first element of row i, row length) of a C-contiguous array."""
    ary = context.make_array(rows_type)(context, builder, rows)
    n = builder.extract_value(ary.shape, 1)
    return builder.gep(ary.data, [builder.mul(i, n)]), n


def _ir_load(builder, at, z, count):
    """``count`` elements from at + z as a vector."""
    pointer = builder.gep(at, [z]) if z is not None else at
    return builder.load(
        builder.bitcast(pointer, ir.VectorType(at.type.pointee, count).as_pointer()),
        align=1,
    )


def _ir_as_floats(builder, raw, dtype):
    """A vector of float16 (uint16 bits) or bfloat16 (int16 bits) as float32, exactly."""
    count = raw.type.count
    floats = ir.VectorType(ir.FloatType(), count)
    if dtype == types.int16:
        wide = builder.shl(
            builder.zext(raw, ir.VectorType(_I32, count)),
            _ir_like(ir.VectorType(_I32, count), 16),
        )
        return builder.bitcast(wide, floats)
    if _HALVES_BY_BITS:
        return builder.fptrunc(_ir_half_bits(builder, raw), floats)
    return builder.fpext(builder.bitcast(raw, ir.VectorType(ir.HalfType(), count)), floats)


def _ir_scalar_value(builder, x, dtype):
    """One element as float64."""
    if dtype in (types.int16, types.uint16):
        v = builder.insert_element(
            ir.Constant(ir.VectorType(x.type, 1), ir.Undefined), x, ir.Constant(_I32, 0)
        )
        v = builder.extract_element(_ir_as_floats(builder, v, dtype), ir.Constant(_I32, 0))
        return builder.fpext(v, _F64)
    return x if dtype == types.float64 else builder.fpext(x, _F64)


def _ir_scan_value(builder, x, dtype):
    """One element in the scan's type (float16 and bfloat16: float32)."""
    if dtype in (types.int16, types.uint16):
        v = builder.insert_element(
            ir.Constant(ir.VectorType(x.type, 1), ir.Undefined), x, ir.Constant(_I32, 0)
        )
        return builder.extract_element(
            _ir_as_floats(builder, v, dtype), ir.Constant(_I32, 0)
        )
    return x


def _logits_rows(rows, i):
    return (
        isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and rows.dtype in (types.float32, types.float64, types.uint16, types.int16)
        and isinstance(i, types.Integer)
    )


@intrinsic
def _logits_scan(typingctx, rows, i):
    """(maximum, minimum, whether a value is NaN) of row i of logits (at least 1
    value), in the row's own type (float16 and bfloat16 as float32), as float64."""
    if not _logits_rows(rows, i):
        return None
    dtype = rows.dtype
    lanes = 4 if dtype == types.float64 else 8

    def codegen(context, builder, signature, args):
        row_i = context.cast(builder, args[1], signature.args[1], types.int64)
        start, n = _ir_row(context, builder, signature.args[0], args[0], row_i)

        def vector(z):
            raw = _ir_load(builder, start, z, lanes)
            return (
                raw
                if dtype in (types.float32, types.float64)
                else _ir_as_floats(builder, raw, dtype)
            )

        first = _ir_scan_value(builder, builder.load(start), dtype)
        splat = _ir_splat(builder, first, lanes)
        highs = [cgutils.alloca_once_value(builder, splat) for _ in range(2)]
        lows = [cgutils.alloca_once_value(builder, splat) for _ in range(2)]
        nan = cgutils.alloca_once_value(
            builder, ir.Constant(ir.VectorType(_I1, lanes), [0] * lanes)
        )
        steps = builder.and_(n, ir.Constant(_I64, -2 * lanes))
        with cgutils.for_range_slice(
            builder, ir.Constant(_I64, 0), steps, ir.Constant(_I64, 2 * lanes), inc=True
        ) as (z, _):
            a = vector(z)
            b = vector(builder.add(z, ir.Constant(_I64, lanes)))
            for acc, v in ((highs[0], a), (highs[1], b)):
                builder.store(_ir_max(builder, builder.load(acc), v), acc)
            for acc, v in ((lows[0], a), (lows[1], b)):
                builder.store(_ir_min(builder, builder.load(acc), v), acc)
            builder.store(
                builder.or_(builder.load(nan), builder.fcmp_unordered("uno", a, b)), nan
            )
        high = cgutils.alloca_once_value(
            builder,
            _ir_lanes(
                builder,
                _ir_max(builder, *[builder.load(a) for a in highs]),
                lambda a, b: _ir_max(builder, a, b),
            ),
        )
        low = cgutils.alloca_once_value(
            builder,
            _ir_lanes(
                builder,
                _ir_min(builder, *[builder.load(a) for a in lows]),
                lambda a, b: _ir_min(builder, a, b),
            ),
        )
        mask = builder.bitcast(builder.load(nan), ir.IntType(lanes))
        bad = cgutils.alloca_once_value(
            builder, builder.icmp_unsigned("!=", mask, ir.Constant(ir.IntType(lanes), 0))
        )
        with cgutils.for_range_slice(builder, steps, n, ir.Constant(_I64, 1), inc=True) as (
            z,
            _,
        ):
            v = _ir_scan_value(builder, builder.load(builder.gep(start, [z])), dtype)
            builder.store(
                builder.or_(builder.load(bad), builder.fcmp_unordered("uno", v, v)), bad
            )
            builder.store(_ir_max(builder, builder.load(high), v), high)
            builder.store(_ir_min(builder, builder.load(low), v), low)
        values = [builder.load(high), builder.load(low)]
        if dtype != types.float64:
            values = [builder.fpext(v, _F64) for v in values]
        values.append(builder.load(bad))
        return context.make_tuple(builder, signature.return_type, values)

    result = types.Tuple((types.float64, types.float64, types.boolean))
    return result(rows, i), codegen


def _ir_aligned_frame(builder):
    """Have the function being built align its stack frame to 64 bytes (a cache line)
    on entry, and never be inlined (its callers keep their own frames, which LLVM would
    not realign).

    The exp loops ran out of AVX2's 16 registers (two quarters a step, before the loop
    took one) and spilled 32-byte vectors, which LLVM placed 16 bytes apart in a frame
    it only knew to be 16-byte aligned; other targets and LLVM versions may still spill
    there. Where the thread's stack put such a slot across a 64-byte line, the reload of
    a vector stored in the same iteration could not be forwarded from the store and
    waited for it: with the same code and data, the rows of float32 logits took 2x as
    long on one thread as on another (GNU OpenMP's worker against the caller; Numba's
    workqueue threads happened to get a good offset), so two threads ran pass 1 no
    faster than one (30 ms against 26 ms, benchmarks/numba_threads.py). Aligned, every
    slot lies within a line on any thread (AVX-512's 64-byte slots too): 14-18 ms on two
    threads."""
    builder.function.attributes.alignstack = 64
    builder.function.attributes.add("noinline")


def _softmax_codegen(pass_one):
    """The codegen of _exps_fast (pass 1: out[0] = exp(rows[i] - hi); returns their
    sum) and _dots_fast (pass 2: returns (sum_z conditional[y, z] exp(rows[i, z] - hi),
    sum of the exps)); the exps in the same order and the same sums in both."""

    def codegen(context, builder, signature, args):
        _ir_aligned_frame(builder)
        rows_type, _, _, other_type = signature.args[:4]
        dtype = rows_type.dtype
        row_i = context.cast(builder, args[1], signature.args[1], types.int64)
        start, n = _ir_row(context, builder, rows_type, args[0], row_i)
        other = context.make_array(other_type)(context, builder, args[3])
        if pass_one:
            other_row = other.data  # out[0]
        else:
            y = context.cast(builder, args[4], signature.args[4], types.int64)
            width = builder.extract_value(other.shape, 1)
            other_row = builder.gep(other.data, [builder.mul(y, width)])
        hi = _ir_splat(builder, args[2], 4)
        zero = ir.Constant(_V4D, [0.0] * 4)
        sums = cgutils.alloca_once_value(builder, zero)
        dots = cgutils.alloca_once_value(builder, zero)
        # One quarter (4 values) a step: two a step, interleaved by LLVM, ran out of
        # AVX2's 16 registers and stored constants to the stack in every step; one
        # keeps the constants as broadcast loads (n=16k float32 logits, one thread:
        # pass 2 23 -> 21 ms, pass 1 27 -> 26; float64 28.5 -> 25.5, 31.4 -> 30.6).
        steps = builder.and_(n, ir.Constant(_I64, ~3))
        with cgutils.for_range_slice(
            builder, ir.Constant(_I64, 0), steps, ir.Constant(_I64, 4), inc=True
        ) as (z, _):
            raw = _ir_load(builder, start, z, 4)
            e = _ir_exp_fast(
                builder, builder.fsub(_ir_float_values(builder, raw, dtype), hi)
            )
            builder.store(builder.fadd(builder.load(sums), e), sums)
            pointer = builder.bitcast(builder.gep(other_row, [z]), _V4D.as_pointer())
            if pass_one:
                builder.store(e, pointer, align=1)
            else:
                c = builder.load(pointer, align=1)
                builder.store(_ir_fma(builder, e, c, builder.load(dots)), dots)
        total = cgutils.alloca_once_value(builder, _ir_sum(builder, [builder.load(sums)]))
        dot = cgutils.alloca_once_value(builder, _ir_sum(builder, [builder.load(dots)]))
        with cgutils.for_range_slice(builder, steps, n, ir.Constant(_I64, 1), inc=True) as (
            z,
            _,
        ):
            v = _ir_scalar_value(builder, builder.load(builder.gep(start, [z])), dtype)
            e = _ir_exp_fast(builder, builder.fsub(v, args[2]))
            builder.store(builder.fadd(builder.load(total), e), total)
            pointer = builder.gep(other_row, [z])
            if pass_one:
                builder.store(e, pointer)
            else:
                builder.store(
                    _ir_fma(builder, e, builder.load(pointer), builder.load(dot)), dot
                )
        if pass_one:
            return builder.load(total)
        values = [builder.load(dot), builder.load(total)]
        return context.make_tuple(builder, signature.return_type, values)

    return codegen


def _float_rows(a):
    return (
        isinstance(a, types.Array)
        and a.ndim == 2
        and a.layout == "C"
        and a.dtype == types.float64
    )


@intrinsic
def _exps_fast(typingctx, rows, i, hi, out):
    """out[0] = exp(rows[i] - hi) and their sum, for a row of logits whose values lie
    within EXP_FAST_RANGE below hi (its maximum)."""
    if not (_logits_rows(rows, i) and hi == types.float64 and _float_rows(out)):
        return None
    return types.float64(rows, i, hi, out), _softmax_codegen(pass_one=True)


@intrinsic
def _dots_fast(typingctx, rows, i, hi, conditional, y):
    """(sum_z conditional[y, z] exp(rows[i, z] - hi), sum_z exp(rows[i, z] - hi)) for
    a row as _exps_fast takes it; the exps and their sum bit for bit as there."""
    if not (
        _logits_rows(rows, i)
        and hi == types.float64
        and _float_rows(conditional)
        and isinstance(y, types.Integer)
    ):
        return None
    result = types.Tuple((types.float64, types.float64))
    return result(rows, i, hi, conditional, y), _softmax_codegen(pass_one=False)


@numba.njit(**_ROW)
def _logits_status(rows, i):
    """(maximum, whether the row takes the fast exps) of row i of logits; a maximum of
    NaN if a value is NaN or +inf, or none is above -inf (a -inf logit is a probability
    of 0, and makes the row's span infinite)."""
    hi, lo, nan = _logits_scan(rows, i)
    if nan or hi == math.inf or hi == -math.inf:
        return math.nan, False
    return hi, hi - lo <= EXP_FAST_RANGE


@numba.njit(**_ROW)
def _exps_into(rows, i, out):
    """out[0] = exp(rows[i] - max) (logits; the maximum's exp is exactly 1.0) and their
    sum; -1.0 if a value is NaN or +inf, or none is above -inf."""
    hi, fast = _logits_status(rows, i)
    if hi != hi:
        return -1.0
    if fast:
        return _exps_fast(rows, i, hi, out)
    return _exps_libm(rows, i, out, hi)


@numba.njit(**_ROW)
def _softmax_dot(rows, i, out, conditional, y):
    """sum_z conditional[y, z] softmax(rows[i])[z]; -1.0 if the row is not finite as
    _exps_into says."""
    hi, fast = _logits_status(rows, i)
    if hi != hi:
        return -1.0
    if fast:
        d, s = _dots_fast(rows, i, hi, conditional, y)
        return d / s
    s = _exps_libm(rows, i, out, hi)
    return _dot(out, 0, conditional, y) / s


def _add_row_any(rows, i, joint, y):
    """Add rows[i] to joint[y]: (row sum, whether a value is below zero, the signed key
    of the largest value, above zero iff that value is), by _add_row_wide for float32
    and float64 rows, _add_row for the others."""


@overload(_add_row_any)
def _add_row_any_overload(rows, i, joint, y):
    if isinstance(rows, types.Array) and rows.dtype in (types.float32, types.float64):

        def wide(rows, i, joint, y):
            s, low, key = _add_row_wide(rows, i, joint, y)
            return s, low < 0.0, key

        return wide

    def keys(rows, i, joint, y):
        s, u_max, s_max = _add_row(rows, i, joint, y)
        return s, _negative_key(u_max), s_max

    return keys


def _dot_any(rows, i, conditional, y):
    """(dot product with conditional[y], row sum, whether a value is below zero) of
    rows[i], by _dot_wide for float32 and float64 rows, _dot_checked for the others."""


@overload(_dot_any)
def _dot_any_overload(rows, i, conditional, y):
    if isinstance(rows, types.Array) and rows.dtype in (types.float32, types.float64):

        def wide(rows, i, conditional, y):
            p, s, low = _dot_wide(rows, i, conditional, y)
            return p, s, low < 0.0

        return wide

    def keys(rows, i, conditional, y):
        p, s, u_max = _dot_checked(rows, i, conditional, y)
        return p, s, _negative_key(u_max)

    return keys


# ---------------------------------------------------------------------------------------
# Pass 1


@numba.njit(**_ROW)
def _accumulate_rows(
    rows, labels, joint, hard, counts, logits, tol, theta, part, rows_in, pairs
):
    """Pass 1 over consecutive rows into one state; (status, index of the bad row).
    ``pairs`` False: no pair counts and no argmax (``hard`` is not read).

    Checks per row, in order: label, non-finite, negative, row sum. A bad row may have
    been added to the joint already (the state is then unspecified). With a partial
    ``part`` (float16 only, never bfloat16, see _fixed_pays), rows go to it in fixed
    point and each class's partial moves to the joint every FIXED_ROWS rows and at the
    end.
    """
    _wide_vectors()
    n_target = joint.shape[0]
    fixed = part.shape[0] > 0
    for i in range(rows.shape[0]):
        y = labels[i]
        if y < 0 or y >= n_target:
            return _LABEL, i
        if logits:
            s = _exps_into(rows, i, theta)
            if s < 0.0:
                return _NONFINITE, i
            _add_scaled(theta, joint, y, 1.0 / s)
            if pairs:
                arg = _first_equal(theta, 0, _skey(1.0))  # the first maximal logit
                hard[y, arg] += 1
        else:
            if fixed:
                s, u_max, key = _add_row_fixed(rows, i, part, y)
                negative = _negative_key(u_max)
                slack = (abs(s) + 1.0) * (rows.shape[1] + 2) * 1.2e-7
                if math.isfinite(s) and abs(abs(s - 1.0) - tol) <= slack:
                    s = 0.0  # a float sum this near the tolerance: again in float64
                    for z in range(rows.shape[1]):
                        s += _value(rows[i, z])
            else:
                s, negative, key = _add_row_any(rows, i, joint, y)
            if not math.isfinite(s) and _has_nonfinite(rows, i):
                return _NONFINITE, i
            if negative:
                return _NEGATIVE, i
            if not abs(s - 1.0) <= tol:
                return _NOT_NORMALISED, i
            # the first index of the largest value; a row of zeros (a tolerance of 1 or
            # more) by a scan, where -0.0 ties with 0.0 as in np.argmax
            if pairs:
                arg = _first_equal(rows, i, key) if key > 0 else _first_max(rows, i)
                hard[y, arg] += 1
        counts[y] += 1
        if fixed:
            rows_in[y] += 1
            if rows_in[y] == FIXED_ROWS:
                _flush_fixed(part, joint, y)
                rows_in[y] = 0
    if fixed:
        for y in range(n_target):
            if rows_in[y]:
                _flush_fixed(part, joint, y)
    return _OK, -1


@numba.njit(**_ROW)
def _small_status(rows, i, s, negative, tol):
    """The status of a small row from its sum and sign (pass 1's order of checks)."""
    if not math.isfinite(s) and _has_nonfinite(rows, i):
        return _NONFINITE
    if negative:
        return _NEGATIVE
    if not abs(s - 1.0) <= tol:
        return _NOT_NORMALISED
    return _OK


@numba.njit(**_ROW)
def _small_add_plain(rows, labels, start, n_rows, dest, cells, pending, counts, tol, pairs):
    """Rows from ``start`` on added (see _small_rows_into) while each is a plain case; at
    the first that is not (a label or check that fails, no value above zero: added to
    ``dest`` already, unless its label fails) or at n_rows: (its index, its sum, whether
    it has a value below zero, its argmax or -1). No call in the loop: its invariants
    then stay in registers (the calls of the rare cases had them reloaded from the
    stack on every row)."""
    n_target = counts.shape[0]
    n_source = rows.shape[1]
    for i in range(start, n_rows):
        y = labels[i]
        if y < 0 or y >= n_target:
            return i, 0.0, False, -1
        s, negative, arg = _small_add(rows, i, dest, y)
        if negative or not (abs(s - 1.0) <= tol and math.isfinite(s)) or arg < 0:
            return i, s, negative, arg
        if pairs:
            slot = i & (HARD_LAG - 1)  # as in _small_rows_into
            if i >= HARD_LAG:
                cells[pending[slot]] += 1
            pending[slot] = y * n_source + arg
        counts[y] += 1
    return n_rows, 0.0, False, 0


@numba.njit(**_ROW)
def _small_rows_into(rows, labels, n_rows, dest, hard, counts, tol, pairs):
    """Pass 1 over the first n_rows rows of at most SMALL_Z values (see _small_add),
    their values into ``dest`` (the joint, or a copy padded to SMALL_Z columns);
    (status, index of the bad row). The plain rows by _small_add_plain, the others here.

    A row's pair count is incremented HARD_LAG rows after its argmax is known (as the
    C core does): incremented at once, the increment, whose address comes at the end of
    the row's longest chain, held up the rows after it (pass 1 at Z=10 took 57 ms
    instead of 34). ``pairs`` False: no pair counts (``hard`` is not read)."""
    n_target, n_source = counts.shape[0], rows.shape[1]
    cells = hard.reshape(hard.size)
    pending = np.zeros(HARD_LAG, dtype=np.int64)
    i = 0
    while True:
        i, s, negative, arg = _small_add_plain(
            rows, labels, i, n_rows, dest, cells, pending, counts, tol, pairs
        )
        if i == n_rows:
            break
        y = labels[i]
        if y < 0 or y >= n_target:
            return _LABEL, i
        if negative or not (abs(s - 1.0) <= tol and math.isfinite(s)):
            status = _small_status(rows, i, s, negative, tol)
            if status != _OK:
                return status, i
        if pairs:
            if arg < 0:  # no value above zero
                arg = _first_max(rows, i)
            slot = i & (HARD_LAG - 1)  # its pair count, HARD_LAG rows later
            if i >= HARD_LAG:
                cells[pending[slot]] += 1
            pending[slot] = y * n_source + arg
        counts[y] += 1
        i += 1
    if pairs:
        for i in range(max(0, n_rows - HARD_LAG), n_rows):
            cells[pending[i & (HARD_LAG - 1)]] += 1
    return _OK, -1


@numba.njit(**_ROW)
def _small_split(rows):
    """(rows whose quarters can be read in place, zeroed copy of the others with the
    rows that the last one's quarters reach)."""
    n_rows, n_source = rows.shape
    over = (n_source + 3) // 4 * 4 - n_source  # values read past a row's end, <= 3
    safe = max(0, n_rows - (over + n_source - 1) // n_source)
    tail = np.zeros(
        (n_rows - safe + (over + n_source - 1) // n_source, n_source), rows.dtype
    )
    for r in range(n_rows - safe):  # not tail[:k] = rows[safe:]: the message of its
        for z in range(n_source):  # shape check cost 6 s of compile time per type
            tail[r, z] = rows[safe + r, z]
    return safe, tail


@numba.njit(**_ROW)
def _accumulate_small(rows, labels, joint, hard, counts, tol, pairs):
    """Pass 1 over rows of at most SMALL_Z values (probabilities); (status, index of the
    bad row). Up to SMALL_PADDED_CLASSES classes (and 4 rows per class), into a copy
    of the joint padded to SMALL_Z columns (whole quarters, no masked stores), added
    to ``joint`` at the end."""
    n_rows, n_source = rows.shape
    n_target = joint.shape[0]
    padded = n_target <= SMALL_PADDED_CLASSES and n_rows >= 4 * n_target
    dest = np.zeros((n_target, SMALL_Z)) if padded else joint
    safe, tail = _small_split(rows)
    status, row = _small_rows_into(rows, labels, safe, dest, hard, counts, tol, pairs)
    if status == _OK:
        status, row = _small_rows_into(
            tail, labels[safe:], n_rows - safe, dest, hard, counts, tol, pairs
        )
        row = row + safe if status != _OK else -1
    if padded:
        for y in range(n_target):
            for z in range(n_source):
                joint[y, z] += dest[y, z]
    return status, row


def _holds_halves(rows):
    """Whether an array holds float16 bit patterns (uint16), known when compiling; not
    bfloat16's (int16), whose values are not multiples of 2^-24."""


@overload(_holds_halves)
def _holds_halves_overload(rows):
    if isinstance(rows, types.Array):
        halves = rows.dtype == types.uint16
        return lambda rows: halves
    return None


@numba.njit(**_ROW)
def _fixed_pays(halves, n_rows, n_source, n_target, logits, tol):
    """Whether float16 probabilities (``halves``; never bfloat16) take the fixed-point
    pass, as in the C core: a small enough partial, at least FIXED_MIN_ROWS_PER_CLASS
    rows per class on average to pay for it, and a tolerance under which every value
    of a valid row is below 1.5 (64 of them times 2^24 stay below 2^31)."""
    return (
        halves
        and not logits
        and tol < 0.5
        and n_target * n_source <= FIXED_MAX_CELLS
        and n_rows >= FIXED_MIN_ROWS_PER_CLASS * n_target
    )


@numba.njit(**_ROW)
def _accumulate_slice(block, labels, start, stop, joint, hard, counts, logits, tol, pairs):
    """Pass 1 over rows [start, stop) of a block into slot ``joint``, ``hard``,
    ``counts``; (status, index of the bad row in the block). Up to LOCAL_STATE_CELLS
    cells, into state private to the call, added to the slot at the end. ``pairs``
    False: no pair counts (``hard`` is not read)."""
    n_target, n_source = joint.shape
    theta = np.empty((1, n_source if logits else 0))
    local_counts = np.zeros(n_target, dtype=np.int64)
    local = n_target * n_source <= LOCAL_STATE_CELLS
    if local:
        local_joint = np.zeros((n_target, n_source))
        local_hard = np.zeros((n_target, n_source) if pairs else (0, 0), dtype=np.int64)
    else:
        local_joint = joint
        local_hard = hard
    if n_source <= SMALL_Z and not logits:
        status, row = _accumulate_small(
            block[start:stop],
            labels[start:stop],
            local_joint,
            local_hard,
            local_counts,
            tol,
            pairs,
        )
    else:
        fixed = _fixed_pays(
            _holds_halves(block), stop - start, n_source, n_target, logits, tol
        )
        part = np.zeros((n_target, n_source) if fixed else (0, 0), dtype=np.int32)
        rows_in = np.zeros(n_target if fixed else 0, dtype=np.int32)
        status, row = _accumulate_rows(
            block[start:stop],
            labels[start:stop],
            local_joint,
            local_hard,
            local_counts,
            logits,
            tol,
            theta,
            part,
            rows_in,
            pairs,
        )
    if status != _OK:
        return status, start + row
    for k in range(n_target):
        counts[k] += local_counts[k]
        if local:
            for z in range(n_source):
                joint[k, z] += local_joint[k, z]
            if pairs:
                for z in range(n_source):
                    hard[k, z] += local_hard[k, z]
    return _OK, -1


# The parallel loops only call serial functions: Numba's parfor passes then have nothing
# to analyse or fuse inside them (array expressions there made compiling 3x slower).


def _accumulate_loop(block, labels, joint, hard, counts, logits, tol, status, bad, pairs):
    """Pass 1 over a block: slot t takes the t-th slice of its rows."""
    n = block.shape[0]
    n_slots = joint.shape[0]
    per = (n + n_slots - 1) // n_slots
    for t in numba.prange(n_slots):
        start = min(n, t * per)
        status[t], bad[t] = _accumulate_slice(
            block,
            labels,
            start,
            min(n, start + per),
            joint[t],
            hard[t],
            counts[t],
            logits,
            tol,
            pairs,
        )


# ---------------------------------------------------------------------------------------
# Pass 2


@numba.njit(**_ROW)
def _log_product(mantissa, exponent, direct, p):
    """The running sum of log terms, ``log(mantissa) + exponent * ln 2 + direct``, with
    the term log(p) added (lf_logsum_mul of the C core): p multiplies the mantissa,
    which is brought back to [0.5, 1) (its exponent moved to ``exponent``, exactly)
    only when it leaves [2^-64, 2^64], so that from one row to the next the chain is
    one multiplication; terms outside [1e-280, 2^900] take a direct log (the product
    then stays a normal number). Scaling by a power of two rounds nothing: the same
    products as bringing the mantissa back on every row."""
    if not (p >= 1e-280 and p <= 8.452712498170644e270):  # 2^900
        return mantissa, exponent, direct + math.log(p)
    mantissa *= p
    if mantissa >= 5.421010862427522e-20 and mantissa <= 1.8446744073709552e19:
        return mantissa, exponent, direct
    bits = _f64_bits(mantissa)
    exponent += ((bits >> 52) & 0x7FF) - 1022
    return _f64_of_bits((bits & ~(0x7FF << 52)) | (1022 << 52)), exponent, direct


@numba.njit(**_ROW)
def _log_of_product(mantissa, exponent, direct):
    """The sum of log terms held by _log_product (its mantissa first brought to
    [0.5, 1))."""
    bits = _f64_bits(mantissa)
    exponent += ((bits >> 52) & 0x7FF) - 1022
    mantissa = _f64_of_bits((bits & ~(0x7FF << 52)) | (1022 << 52))
    return (math.log(mantissa) + exponent * 0.6931471805599453) + direct


@numba.njit(**_ROW)
def _small_product(rows, labels, start, n_rows, conditional, tol, mantissa, exponent):
    """Rows from ``start`` on multiplied into the product ``mantissa * 2^exponent`` of
    _log_product (brought back into [2^-64, 2^64] here too) while each is a plain case;
    at the first that is not (a label or check that fails, a term outside [1e-280,
    2^900]) or at n_rows: (its index, the mantissa and exponent before it, its term,
    its sum, whether it has a value below zero). No call in the loop: the product then
    stays in a register (spilled around the calls of the rare cases, its chain from row
    to row went through memory: pass 2 at Z=10 took 29 ms instead of 25)."""
    n_target = conditional.shape[0]
    for i in range(start, n_rows):
        y = labels[i]
        if y < 0 or y >= n_target:
            return i, mantissa, exponent, 0.0, 0.0, False
        p, s, negative = _small_dot(rows, i, conditional, y)
        if (
            negative
            or not (abs(s - 1.0) <= tol and math.isfinite(s))
            or not (p >= 1e-280 and p <= 8.452712498170644e270)
        ):
            return i, mantissa, exponent, p, s, negative
        mantissa *= p
        if not (mantissa >= 5.421010862427522e-20 and mantissa <= 1.8446744073709552e19):
            bits = _f64_bits(mantissa)  # as _log_product
            exponent += ((bits >> 52) & 0x7FF) - 1022
            mantissa = _f64_of_bits((bits & ~(0x7FF << 52)) | (1022 << 52))
    return n_rows, mantissa, exponent, 0.0, 0.0, False


@numba.njit(**_ROW)
def _small_score_rows(rows, labels, n_rows, conditional, tol, mantissa, exponent, direct):
    """Pass 2 over the first n_rows rows of at most SMALL_Z values (see _small_dot),
    checked as pass 1 checks them, the log terms into the running product of
    _log_product (the plain rows by _small_product, the others here); (status, index
    of the bad row, mantissa, exponent, direct)."""
    n_target = conditional.shape[0]
    i = 0
    while True:
        i, mantissa, exponent, p, s, negative = _small_product(
            rows, labels, i, n_rows, conditional, tol, mantissa, exponent
        )
        if i == n_rows:
            return _OK, -1, mantissa, exponent, direct
        y = labels[i]
        if y < 0 or y >= n_target:
            return _LABEL, i, mantissa, exponent, direct
        if negative or not (abs(s - 1.0) <= tol and math.isfinite(s)):
            status = _small_status(rows, i, s, negative, tol)
            if status != _OK:
                return status, i, mantissa, exponent, direct
        if not (p > 0.0 and math.isfinite(p)):
            return _ZERO_PROB, i, mantissa, exponent, direct
        mantissa, exponent, direct = _log_product(mantissa, exponent, direct, p)
        i += 1


@numba.njit(**_ROW)
def _score_small(rows, labels, conditional, tol):
    """Pass 2 over rows of at most SMALL_Z values (probabilities); (status, index of
    the bad row, sum of log terms)."""
    safe, tail = _small_split(rows)
    status, row, mantissa, exponent, direct = _small_score_rows(
        rows, labels, safe, conditional, tol, 1.0, 0, 0.0
    )
    if status != _OK:
        return status, row, 0.0
    status, row, mantissa, exponent, direct = _small_score_rows(
        tail,
        labels[safe:],
        rows.shape[0] - safe,
        conditional,
        tol,
        mantissa,
        exponent,
        direct,
    )
    if status != _OK:
        return status, row + safe, 0.0
    return _OK, -1, _log_of_product(mantissa, exponent, direct)


@numba.njit(**_ROW)
def _score_rows(rows, labels, conditional, logits, tol, theta):
    """Pass 2 over consecutive rows; (status, index of the bad row, sum of log terms).

    Each row is checked as pass 1 checks it, in the same order (label, non-finite,
    negative, row sum; logits: label, non-finite), so that rows changed since pass 1
    give pass 1's status and row; a row that passes them but has no mass under C gives
    _ZERO_PROB. The log terms are summed as the log of their product (_log_product).
    """
    _wide_vectors()
    n_target = conditional.shape[0]
    mantissa, exponent, direct = 1.0, 0, 0.0
    for i in range(rows.shape[0]):
        y = labels[i]
        if y < 0 or y >= n_target:
            return _LABEL, i, 0.0
        if logits:
            p = _softmax_dot(rows, i, theta, conditional, y)
            if p < 0.0:
                return _NONFINITE, i, 0.0
        else:
            p, s, negative = _dot_any(rows, i, conditional, y)
            if not math.isfinite(s) and _has_nonfinite(rows, i):
                return _NONFINITE, i, 0.0
            if negative:
                return _NEGATIVE, i, 0.0
            if not abs(s - 1.0) <= tol:
                return _NOT_NORMALISED, i, 0.0
        if not (p > 0.0 and math.isfinite(p)):
            return _ZERO_PROB, i, 0.0
        mantissa, exponent, direct = _log_product(mantissa, exponent, direct, p)
    return _OK, -1, _log_of_product(mantissa, exponent, direct)


@numba.njit(**_ROW)
def _score_slice(block, labels, start, stop, conditional, logits, tol):
    """Pass 2 over rows [start, stop) of a block; (status, index of the bad row in the
    block, sum of log terms)."""
    if block.shape[1] <= SMALL_Z and not logits:
        status, row, total = _score_small(
            block[start:stop], labels[start:stop], conditional, tol
        )
    else:
        theta = np.empty((1, block.shape[1] if logits else 0))
        status, row, total = _score_rows(
            block[start:stop], labels[start:stop], conditional, logits, tol, theta
        )
    return status, (start + row if status != _OK else -1), total


def _score_loop(block, labels, conditional, logits, tol, partial, status, bad):
    """Pass 2 over a block: chunk c takes the c-th slice of its rows."""
    n = block.shape[0]
    n_chunks = partial.shape[0]
    for c in numba.prange(n_chunks):
        status[c], bad[c], partial[c] = _score_slice(
            block,
            labels,
            c * n // n_chunks,
            (c + 1) * n // n_chunks,
            conditional,
            logits,
            tol,
        )


def _with_and_without_team(loop):
    """``loop`` compiled twice: with a thread team (its ``numba.prange`` runs in
    parallel), and without one, for a process forked from one whose threading layer was
    running (see _forked_serial): ``prange`` is then ``range``, over the same slices and
    chunks, so the same values with any thread count. The second is compiled from a
    copy of the function under its own name, so the two have their own cache files
    (Numba's cache does not tell the two compilations of one function apart)."""
    name = loop.__name__.replace("_loop", "") + "_serial"
    serial = FunctionType(
        loop.__code__, loop.__globals__, name, loop.__defaults__, loop.__closure__
    )
    serial.__qualname__ = name
    return numba.njit(parallel=True, **_ROW)(loop), numba.njit(**_ROW)(serial)


_accumulate, _accumulate_serial = _with_and_without_team(_accumulate_loop)
_score, _score_serial = _with_and_without_team(_score_loop)


def n_chunks(n):
    """Pass-2 chunks of a block of n rows: about n / CHUNK, and when more than one, a
    multiple of CHUNK_GROUP (balanced over 1, 2, 4 or 8 threads). Chunk c holds rows
    [c * n // k, (c + 1) * n // k)."""
    k = (n + CHUNK - 1) // CHUNK
    if k > 1:
        k = (k + CHUNK_GROUP - 1) // CHUNK_GROUP * CHUNK_GROUP
    return k


# ---------------------------------------------------------------------------------------
# Finalize


@numba.njit(**_ROW)
def _xlogx(h):
    return h * math.log(h) if h > 1 else 0.0


@numba.njit(**_ROW)
def _neumaier_add(total, carry, term):
    """``total + term`` and the carry of the rounding error it lost (Neumaier)."""
    new = total + term
    if abs(total) >= abs(term):
        return new, carry + ((total - new) + term)
    return new, carry + ((term - new) + total)


@numba.njit(**_ROW)
def _finalize_slots(joint, hard, counts, conditional, marginal, column_counts, pairs):
    """The slots reduced in order into slot 0, C = S / M into ``conditional`` (0 where
    M = 0; M summed over y in order, as ``joint_sum.sum(axis=0)``), M and H_z into
    ``marginal`` and ``column_counts``; returns NCE = (sum H log H - sum_z H_z log H_z)
    / sum H, both sums compensated (Neumaier), NaN without pairs (none counted, or
    ``pairs`` False: ``hard`` is not read). ``conditional`` may be slot 1 of ``joint``:
    it is written after every slot has been read."""
    n_slots, n_target, n_source = joint.shape
    n = 0
    hlogh = 0.0
    hlogh_c = 0.0
    for y in range(n_target):
        for t in range(1, n_slots):
            counts[0, y] += counts[t, y]
        for z in range(n_source):
            s = joint[0, y, z]
            for t in range(1, n_slots):
                s = s + joint[t, y, z]
            joint[0, y, z] = s
            marginal[z] += s
            if pairs:
                h = hard[0, y, z]
                for t in range(1, n_slots):
                    h = h + hard[t, y, z]
                hard[0, y, z] = h
                column_counts[z] += h
                n += h
                hlogh, hlogh_c = _neumaier_add(hlogh, hlogh_c, _xlogx(h))
    for y in range(n_target):
        for z in range(n_source):
            m = marginal[z]
            conditional[y, z] = joint[0, y, z] / m if m > 0.0 else 0.0
    hz = 0.0
    hz_c = 0.0
    for z in range(n_source):
        hz, hz_c = _neumaier_add(hz, hz_c, _xlogx(column_counts[z]))
    if n == 0:
        return math.nan
    return ((hlogh - hz) + (hlogh_c - hz_c)) / n


def finalize(joint_sum, hard, counts):
    """End of pass 1 over the thread slots, in place (as the compiled backend's).

    Returns ``(joint_sum, hard_sum, class_counts, conditional, column_sums, nce)``:
    the slots reduced in order into slot 0 (the same values as ``joint.sum(axis=0)``),
    C written over slot 1 of ``joint_sum`` (a new array with one slot), so the first
    four are views of the slots, which hold nothing else afterwards; M (float64, Z)
    and NCE from the pair counts (``hard`` None: None and NaN).
    """
    n_slots_, n_target, n_source = joint_sum.shape
    pairs = hard is not None
    if pairs and hard.shape != joint_sum.shape or counts.shape != (n_slots_, n_target):
        raise ValueError("finalize: joint, hard and counts disagree in shape")
    if n_slots_ == 0:
        raise ValueError("finalize: no slots")
    conditional = joint_sum[1] if n_slots_ > 1 else np.empty((n_target, n_source))
    marginal = np.zeros(n_source)
    column_counts = np.zeros(n_source, dtype=np.int64)
    slots = hard if pairs else np.zeros((1, 0, 0), np.int64)  # not read
    nce = _finalize_slots(
        joint_sum, slots, counts, conditional, marginal, column_counts, pairs
    )
    hard_sum = hard[0] if pairs else None
    return joint_sum[0], hard_sum, counts[0], conditional, marginal, float(nce)


# ---------------------------------------------------------------------------------------
# The backend interface


def _team(n_threads):
    """The thread team for ``n_threads``: at most the threads Numba started."""
    return max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))


def n_slots(n_threads):
    """Thread-local state slots: one per thread of the team (see _team)."""
    return _team(n_threads)


# Numba's "workqueue" threading layer (used when neither OpenMP nor TBB is available)
# aborts the whole process when parallel functions are entered from two Python threads
# at once, so calls are serialised under it. The layer is only known after the first
# parallel call, which is therefore serialised too.
_WORKQUEUE_LOCK = threading.Lock()


def _run(kernel, *args):
    try:
        serialise = numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel function has run yet
        serialise = True
    if serialise:
        with _WORKQUEUE_LOCK:
            return kernel(*args)
    return kernel(*args)


# A child forked (multiprocessing's default start method on Linux) from a process whose
# threading layer had started inherits a layer whose threads do not exist in it: GNU
# OpenMP then hangs, and Numba's guard against that kills the child; only TBB is safe.
# Such a child runs the serial twins of the kernels instead (the same slices and chunks,
# so the same values). Decided once, at the fork, by this hook.
_FORKED_SERIAL = False


def _layer_started():
    from numba.np.ufunc import parallel

    return bool(getattr(parallel, "_is_initialized", True))


def _after_fork_in_child():
    global _FORKED_SERIAL
    if _FORKED_SERIAL:
        return
    try:
        _FORKED_SERIAL = _layer_started() and numba.threading_layer() != "tbb"
    except ValueError:  # the layer has not started: the child may start its own
        _FORKED_SERIAL = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _call(parallel_kernel, serial_kernel, n_threads, *args):
    """Run a kernel with a team of ``n_threads`` (clamped, see _team), leaving the
    calling thread's Numba thread count as it was; serially in a forked child."""
    if _FORKED_SERIAL:
        return serial_kernel(*args)
    previous = numba.get_num_threads()
    numba.set_num_threads(_team(n_threads))
    try:
        return _run(parallel_kernel, *args)
    finally:
        numba.set_num_threads(previous)


def _kernel_block(block):
    """The block as the kernels take it, in place: float16 as its bits (uint16), and
    bfloat16 as its bits typed int16 (a Numba type of its own; NumPy has none)."""
    if block.dtype == np.float16:  # Numba has no float16 type
        return block.view(np.uint16)
    if is_bfloat16(block.dtype):
        return block.view(np.int16)
    return block


def _halves_to_float32_loop(halves, out):
    flat_in = halves.reshape(-1)
    flat_out = out.reshape(-1)
    for i in numba.prange(flat_in.shape[0]):
        flat_out[i] = np.float32(_value(flat_in[i]))


_halves_to_float32, _halves_to_float32_serial = _with_and_without_team(
    _halves_to_float32_loop
)


def _prepare(block, n_threads):
    """The values of a block as the kernels read them, as an array: float16 and
    bfloat16 become float32 through the kernels' own element conversion (exact: every
    half and every bfloat16 is a float32). The kernels convert inside their row loops
    and never call this; it lets a test check that conversion on every bit pattern."""
    block = _kernel_block(block)
    if block.dtype not in (np.uint16, np.int16):
        return block
    out = np.empty(block.shape, dtype=np.float32)
    _call(_halves_to_float32, _halves_to_float32_serial, n_threads, block, out)
    return out


def accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    """Pass 1: add a block to the slots; (status, first bad row). ``hard`` None: no
    pair counts, and no argmax is taken."""
    block = _kernel_block(block)
    n_slots_ = joint_sum.shape[0]
    status = np.zeros(n_slots_, dtype=np.int64)
    bad = np.full(n_slots_, -1, dtype=np.int64)
    pairs = hard is not None
    if not pairs:  # a stand-in of the same type, never read
        hard = np.zeros((n_slots_, 0, 0), np.int64)
    if len(block):
        _call(
            _accumulate,
            _accumulate_serial,
            n_threads,
            block,
            labels,
            joint_sum,
            hard,
            counts,
            logits,
            tol,
            status,
            bad,
            pairs,
        )
    for t in range(n_slots_):
        if status[t]:
            return int(status[t]), int(bad[t])
    return _status.OK, -1


def score(block, labels, conditional, logits, tol, n_threads):
    """Pass 2: (status, first bad row, sum of log terms); each row is validated as
    pass 1 validates it (``tol``: the row-sum tolerance of pass 1)."""
    block = _kernel_block(block)
    k = n_chunks(len(block))
    partial = np.zeros(k)
    status = np.zeros(k, dtype=np.int64)
    bad = np.full(k, -1, dtype=np.int64)
    if k:
        _call(
            _score,
            _score_serial,
            n_threads,
            block,
            labels,
            conditional,
            logits,
            float(tol),
            partial,
            status,
            bad,
        )
    for c in range(k):
        if status[c]:
            return int(status[c]), int(bad[c]), 0.0
    total = 0.0
    for c in range(k):
        total += partial[c]
    return _status.OK, -1, total
