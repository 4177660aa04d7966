"""What folding did and did not do: the counts, and each node left unfolded with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphsurgeon.core.units import format_bytes


@dataclass
class Unfolded:
    op: str
    name: str
    scope: str
    reason: str
    policy: bool  # kept on purpose (random, QDQ, excluded, size) rather than impossible

    def __str__(self) -> str:
        return f"{self.op} {self.name!r}: {self.summary()}"

    def summary(self) -> str:
        where = "" if self.scope == "main" else f"in {self.scope}: "
        return f"{where}{self.op}: {self.reason}"


@dataclass
class FoldReport:
    folded: int = 0
    initializers: int = 0
    new_bytes: int = 0
    removed_initializers: int = 0
    freed_bytes: int = 0
    ifs_inlined: int = 0
    constants_moved: int = 0
    aliased: int = 0
    relocated: int = 0
    sessions: int = 0
    reference_runs: int = 0
    unfolded: list[Unfolded] = field(default_factory=list)

    @property
    def failures(self) -> list[Unfolded]:
        return [u for u in self.unfolded if not u.policy]

    def changed(self) -> bool:
        return bool(self.folded or self.ifs_inlined or self.removed_initializers)

    def lines(self) -> list[str]:
        out = [
            f"fold-constants: folded {self.folded} node(s) into {self.initializers} new constant(s) "
            f"({format_bytes(self.new_bytes)}) and {self.constants_moved} Constant node(s) turned initializer; "
            f"{self.aliased} folded value(s) equal to a constant read it instead of a copy; "
            f"removed {self.removed_initializers} initializer(s) only they read "
            f"({format_bytes(self.freed_bytes)}); inlined {self.ifs_inlined} If(s); "
            f"{self.sessions} onnxruntime session(s), {self.reference_runs} reference evaluation(s)"
        ]
        if self.relocated:
            out.append(
                f"fold-constants: moved {self.relocated} surviving tensor(s) of mostly-dead external data files "
                "into the new data file (those files are no longer referenced)"
            )
        if self.unfolded:
            out.append(f"fold-constants: {len(self.unfolded)} node(s) with constant inputs left unfolded:")
            out.extend(f"  {u}" for u in self.unfolded[:50])
            if len(self.unfolded) > 50:
                out.append(f"  ... and {len(self.unfolded) - 50} more")
        return out
