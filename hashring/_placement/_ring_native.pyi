"""Type stub of the optional C extension ``hashring._placement._ring_native``
(``_ring_native.c``): the ring's lookup after the hash."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

_U32: TypeAlias = Buffer | npt.NDArray[np.uint32]  # numpy arrays, typed as buffers on 3.12+
_Intp: TypeAlias = Buffer | npt.NDArray[np.intp]

class RingIndex:
    """Immutable lookup index of one ring snapshot (see ``_ring_native.c``).

    ``points``: the sorted uint32 points followed by the padding point 2**32 - 1;
    ``owners``: their owners (indices into ``names``) followed by the wrap-around owner;
    ``bits``: log2 of the bucket count, 1 to 28. Copies what it needs; O(points + 2**bits).

    Raises:
        TypeError: a buffer that is not one-dimensional uint32, ``names`` not a tuple of str.
        ValueError: lengths differ, no point, unsorted points, no padding point, an owner
            out of range, ``bits`` out of range.
    """

    def __new__(
        cls, points: _U32, owners: _U32, names: tuple[str, ...], bits: int
    ) -> RingIndex: ...
    def owner_of_digest(self, digest: bytes, /) -> str:
        """Owner of the position in the first 4 bytes (little-endian) of ``digest`` (bytes,
        at least 4 long). Raises TypeError (not bytes) or ValueError (too short)."""
    def owner_at(self, position: int, /) -> str:
        """Owner of ``position``, an int from -2**31 to 2**32 - 1 taken modulo 2**32.
        Raises TypeError (not an int) or ValueError (out of range)."""
    def index_at(self, position: int, /) -> int:
        """Index into ``names`` of the owner of ``position`` (as :meth:`owner_at`)."""
    def owners_of(self, positions: _U32, /) -> list[str]:
        """Owners' names of a one-dimensional uint32 buffer of positions. O(k)."""
    def fill_indices(self, positions: _U32, out: _Intp, /) -> None:
        """Write the owner index of each uint32 position into the intp buffer ``out``."""
    def entries(self) -> bytes:
        """The bucket table as native uint32: 0x80000000 | owner, or a first point's index."""
    def pairs(self) -> bytes:
        """The (point, owner) pairs, padding included, as native uint32."""
    @property
    def nbytes(self) -> int:
        """Bytes held by the table and the pairs."""
    @property
    def bits(self) -> int:
        """log2 of the number of buckets."""
    @property
    def size(self) -> int:
        """Number of points, without the padding point."""
    @property
    def names(self) -> tuple[str, ...]:
        """The owners' names, indexed by owner."""
