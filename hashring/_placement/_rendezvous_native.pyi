"""Type stub of the optional C accelerator of rendezvous scoring (see scores.py)."""

from typing import final

MAX_SIZE: int
"""The most nodes a Scorer takes (2**24)."""

@final
class Scorer:
    """Rendezvous scoring of one node set, held in C arrays; immutable."""

    def __new__(
        cls,
        seeds: list[int] | tuple[int, ...],
        weights: list[float] | tuple[float, ...] | None = None,
    ) -> Scorer: ...
    @property
    def size(self) -> int: ...
    @property
    def equal(self) -> bool: ...
    def best(self, position: int, /) -> int: ...
    def ranking(self, position: int, /) -> list[int] | None: ...
    def mixes(self, position: int, /) -> list[int]: ...
