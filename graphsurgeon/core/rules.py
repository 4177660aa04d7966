"""Per-op rules registered by op type and opset range, instead of if-chains (as onnxscript's constant
folder registers its evaluators): ``@RULES.register("Slice", since=10)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

Rule = TypeVar("Rule", bound=Callable[..., object])


class OpRules(Generic[Rule]):
    """A table of rules: for an op type and the model's opset, the rule that applies (or None)."""

    def __init__(self) -> None:
        self._rules: dict[str, list[tuple[int, int, Rule]]] = {}

    def register(self, *op_types: str, since: int = 1, until: int = 10**6) -> Callable[[Rule], Rule]:
        """Register a rule for `op_types` at opsets since <= opset <= until."""

        def add(rule: Rule) -> Rule:
            for op_type in op_types:
                self._rules.setdefault(op_type, []).append((since, until, rule))
            return rule

        return add

    def lookup(self, op_type: str, opset: int | None) -> Rule | None:
        for since, until, rule in self._rules.get(op_type, ()):
            if opset is None or since <= opset <= until:
                return rule
        return None

    def __contains__(self, op_type: str) -> bool:
        return op_type in self._rules
