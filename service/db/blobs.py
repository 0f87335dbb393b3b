"""Arrays to and from the `.npy` bytes stored in binary columns."""

import io

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
    np.frombuffer(data, dtype=target, offset=len(header)).reshape(array.shape)[...] = array
    # bytearray is what the database drivers bind without a copy; `bytes(...)` would be one.
    return data  # type: ignore[return-value]


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
