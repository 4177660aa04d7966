"""Fresh names: one allocator that knows every name a model uses, in every scope."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphsurgeon.core.index import ModelIndex


class NameAllocator:
    """Hands out names no scope of the model uses yet (``wanted``, else ``wanted_1``, ``wanted_2``...)."""

    def __init__(self, taken: set[str]):
        self.taken = taken

    @classmethod
    def for_model(cls, index: ModelIndex) -> NameAllocator:
        taken: set[str] = set()
        for scope in index.scopes:
            taken.update(scope.producer, scope.inputs, scope.initializers, scope.sparse_initializers)
            taken.update(scope.value_info, scope.outputs)
            for node in scope.nodes:
                taken.update(node.input)
        taken.discard("")
        return cls(taken)

    def fresh(self, wanted: str) -> str:
        name, n = wanted, 0
        while name in self.taken:
            n += 1
            name = f"{wanted}_{n}"
        self.taken.add(name)
        return name

    def __contains__(self, name: str) -> bool:
        return name in self.taken
