"""IDX files (the MNIST / Fashion-MNIST format): unsigned-byte arrays with a big-endian shape header."""
import os

import numpy as np

__all__ = ['read_idx', 'write_idx']

_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned byte data, 1-d labels / 3-d images


def read_idx(path: str) -> np.ndarray:
    """An unsigned-byte IDX file as a uint8 array of its declared shape."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0:2] != b'\x00\x00' or data[2] != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f'{path}: header declares shape {shape} but holds {arr.size} values')
    return arr.reshape(shape)


def write_idx(path: str, arr: np.ndarray):
    """Write a uint8 array of 1 (labels) or 3 (images) dimensions as an IDX file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim not in _IDX_MAGIC:
        raise ValueError(f'write_idx: expected a 1-d label or 3-d image array, got shape {arr.shape}')
    header = _IDX_MAGIC[arr.ndim].to_bytes(4, 'big') + b''.join(int(s).to_bytes(4, 'big') for s in arr.shape)
    tmp = path + '.part'
    with open(tmp, 'wb') as f:
        f.write(header + arr.tobytes())
    os.replace(tmp, path)
