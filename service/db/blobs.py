"""Arrays to and from the `.npy` bytes stored in binary columns."""

import io
import math

import numpy as np
import numpy.typing as npt


def array_to_npy(array: npt.NDArray[np.generic], dtype: npt.DTypeLike | None = None) -> bytes:
    """Serialize an array (any shape and numeric dtype) to `.npy` bytes, cast to `dtype`
    on the way when given.

    The bytes are allocated once and the values copied (and cast) straight into them:
    `np.save` into a `BytesIO` would grow its buffer and `getvalue` copy it again, so a
    168 MB upload briefly held three copies of its data."""
    if array.dtype.hasobject:
        raise ValueError("object arrays cannot be stored")
    target = np.dtype(array.dtype if dtype is None else dtype)
    header_buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header_buffer,
        {
            "descr": np.lib.format.dtype_to_descr(target),
            "fortran_order": False,
            "shape": array.shape,
        },
    )
    header = header_buffer.getvalue()
    data = bytearray(len(header) + array.size * target.itemsize)
    data[: len(header)] = header
    stored = np.frombuffer(data, dtype=target, offset=len(header)).reshape(array.shape)
    if array.ndim == 0:
        stored[...] = array
    for rows in row_blocks(array):
        stored[rows] = array[rows]
    # bytearray is what the database drivers bind without a copy; `bytes(...)` would be one.
    return data  # type: ignore[return-value]


# Large arrays are copied a block of rows at a time, so that no single NumPy call holds the
# GIL long enough to stall the event loop's other requests.
BLOCK_BYTES = 4 * 1024 * 1024


def row_blocks(array: npt.NDArray[np.generic]) -> list[slice]:
    """Slices of `array`'s first axis, each about BLOCK_BYTES (none for a 0-d array)."""
    if array.ndim == 0:
        return []
    row_bytes = max(array.itemsize * math.prod(array.shape[1:]), 1)
    step = max(BLOCK_BYTES // row_bytes, 1)
    return [slice(start, start + step) for start in range(0, len(array), step)]


def npy_view(data: bytes) -> npt.NDArray[np.generic]:
    """The array that `.npy` bytes hold, as a read-only view of them: no copy."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version != (1, 0):
        raise ValueError(f"unsupported .npy format version {version}")
    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    if dtype.hasobject or fortran_order:
        raise ValueError("only C-ordered numeric arrays are stored")
    view: npt.NDArray[np.generic] = np.frombuffer(data, dtype=dtype, offset=stream.tell())
    return view.reshape(shape)


def npy_to_array(data: bytes) -> npt.NDArray[np.generic]:
    """Read `.npy` bytes back into an array; object arrays are refused."""
    array: npt.NDArray[np.generic] = np.load(io.BytesIO(data), allow_pickle=False)
    return array
