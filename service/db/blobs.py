"""Arrays to and from the `.npy` bytes stored in binary columns."""

import io

import numpy as np
import numpy.typing as npt


def array_to_npy(array: npt.NDArray[np.generic]) -> bytes:
    """Serialize an array (any shape and numeric dtype) to `.npy` bytes."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_to_array(data: bytes) -> npt.NDArray[np.generic]:
    """Read `.npy` bytes back into an array; object arrays are refused."""
    array: npt.NDArray[np.generic] = np.load(io.BytesIO(data), allow_pickle=False)
    return array
