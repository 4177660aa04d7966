"""rename: tensors and nodes, consistently in every scope; refused before any edit on a collision or an unknown name.

A tensor name is renamed everywhere it occurs in its namespace: the main graph with its subgraphs (outer-scope
reads included) and training graphs, or one model-local function body. Because every occurrence moves together
and the renaming stays one-to-one, every read still finds the same definition: the model computes what it did.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError

Namespace = tuple[str, str, str] | None  # None: the main graph; else a function's (domain, name, overload)


def _pairs(entries: Iterable[str], option: str) -> dict[str, str]:
    """OLD=NEW spellings -> {old: new} (split at the first '=')."""
    pairs: dict[str, str] = {}
    for entry in entries:
        old, sep, new = entry.partition("=")
        if not sep or not old or not new:
            raise RewriteError(f"`{option}` takes OLD=NEW with both names given, not {entry!r}")
        if old in pairs and pairs[old] != new:
            raise RewriteError(f"`{option}` renames {old!r} twice ({pairs[old]!r} and {new!r})")
        pairs[old] = new
    return pairs


def _regex(spelling: str) -> tuple[re.Pattern[str], str]:
    """PATTERN=REPLACEMENT (split at the last '=', so a pattern may hold one) -> compiled pattern, replacement."""
    pattern, sep, replacement = spelling.rpartition("=")
    if not sep or not pattern:
        raise RewriteError(f"`regex` takes PATTERN=REPLACEMENT, not {spelling!r}")
    try:
        compiled = re.compile(pattern)
        compiled.sub(replacement, "")  # a bad group reference in the replacement fails here
    except re.error as e:
        raise RewriteError(f"`regex` {spelling!r} is not a valid regular expression: {e}") from None
    return compiled, replacement


def _where(namespace: Namespace) -> str:
    return "the main graph" if namespace is None else f"function {namespace[0]}::{namespace[1]}"


def _unknown(kind: str, name: str, known: Iterable[str]) -> RewriteError:
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return RewriteError(f"cannot rename {kind} {name!r}: the model has no {kind} of that name{hint}")


def _check_one_to_one(kind: str, names: Iterable[str], mapping: dict[str, str], where: str) -> None:
    """Refuse a renaming that gives two different names the same new name."""
    owner: dict[str, str] = {}
    for name in names:
        target = mapping.get(name, name)
        first = owner.setdefault(target, name)
        if first == name:
            continue
        renamed = name if name in mapping else first
        other = first if renamed == name else name
        if other in mapping:
            raise RewriteError(f"cannot rename {kind}s {other!r} and {renamed!r} both to {target!r} in {where}")
        raise RewriteError(
            f"cannot rename {kind} {renamed!r} to {target!r}: {where} already has a {kind} {target!r} "
            "(rename that one too, or pick another name)"
        )


def _plan(
    kind: str,
    names: set[str],
    explicit: dict[str, str],
    pattern: tuple[re.Pattern[str], str] | None,
) -> dict[str, str]:
    """Old -> new for the names of one namespace: explicit pairs, then the regex over the other names."""
    mapping = {old: new for old, new in explicit.items() if old in names}
    if pattern is not None:
        compiled, replacement = pattern
        for name in names:
            if name not in mapping:
                new = compiled.sub(replacement, name)
                if new != name:
                    if not new:
                        raise RewriteError(f"`regex` would give {kind} {name!r} an empty name")
                    mapping[name] = new
    return mapping


@verb(writes=True, preserves_meaning=True)
def rename(
    ctx: Editor,
    *,
    tensor: Annotated[list[str], Opt("rename a tensor: OLD=NEW (repeatable)", metavar="OLD=NEW")] = [],  # noqa: B006
    node: Annotated[list[str], Opt("rename a node: OLD=NEW (repeatable)", metavar="OLD=NEW")] = [],  # noqa: B006
    regex: Annotated[
        str | None, Opt("rename every name matching PATTERN (Python re.sub; \\1 for groups)", metavar="PATTERN=REPL")
    ] = None,
    what: Annotated[str, Opt("what `regex` renames", choices=("tensors", "nodes", "all"))] = "all",
) -> None:
    """Rename tensors and nodes consistently in every scope.

    A tensor is renamed everywhere its name occurs: graph inputs and outputs, initializers, value_info, node
    inputs and outputs, subgraph bodies reading it from the outer scope, quantization annotations; inside a
    model-local function body, the body's own names. `regex` (PATTERN=REPLACEMENT, split at the last '=')
    applies Python's re.sub to every tensor and/or node name (`what`). An unknown name, or a new name that
    collides with another, is refused before anything changes. Renamed graph inputs and outputs are paired
    with the originals by --verify.
    """
    tensor_pairs, node_pairs = _pairs(tensor, "tensor"), _pairs(node, "node")
    pattern = _regex(regex) if regex is not None else None
    if not (tensor_pairs or node_pairs or pattern):
        raise RewriteError("nothing to rename: give `tensor` OLD=NEW, `node` OLD=NEW or `regex` PATTERN=REPLACEMENT")
    tensor_pattern = pattern if what in ("tensors", "all") else None
    node_pattern = pattern if what in ("nodes", "all") else None

    # -- tensors: plan per namespace, check, and only then edit -------------------------------------------
    functions = [(f.domain, f.name, getattr(f, "overload", "")) for f in ctx.proto.functions]
    namespaces: list[Namespace] = [None, *functions]
    tensor_plans: dict[Namespace, dict[str, str]] = {}
    all_tensor_names: set[str] = set()
    for namespace in namespaces:
        names = ctx.tensor_names(function=namespace)
        all_tensor_names |= names
        plan = _plan("tensor", names, tensor_pairs, tensor_pattern)
        if plan:
            _check_one_to_one("tensor", names, plan, _where(namespace))
            tensor_plans[namespace] = plan
    for old in tensor_pairs:
        if old not in all_tensor_names:
            raise _unknown("tensor", old, all_tensor_names)

    # -- nodes: one namespace over every scope (the index is built only when nodes are renamed) -------------
    wants_nodes = bool(node_pairs) or node_pattern is not None
    node_names = {name for name, nodes in ctx.index.by_name.items() if name and nodes} if wants_nodes else set()
    for old in node_pairs:
        if old not in node_names:
            raise _unknown("node", old, node_names)
    node_plan = _plan("node", node_names, node_pairs, node_pattern)
    _check_one_to_one("node", node_names, node_plan, "the model")
    node_plan = {old: new for old, new in node_plan.items() if old != new}
    if pattern is not None and not any(tensor_plans.values()) and not node_plan:
        raise RewriteError(f"`regex` {regex!r} matches no {'tensor or node' if what == 'all' else what[:-1]} name")

    # -- edit ------------------------------------------------------------------------------------------------
    main_plan = tensor_plans.get(None, {})
    interface = {vi.name for vi in (*ctx.proto.graph.input, *ctx.proto.graph.output)}
    original_of = {new: old for old, new in ctx.interface_renames.items()}
    for old, new in main_plan.items():
        if old in interface:
            ctx.interface_renames[original_of.get(old, old)] = new
    for namespace, plan in tensor_plans.items():
        ctx.rename_tensors(plan, function=namespace)
    nodes_to_rename = []
    if node_plan:
        nodes_to_rename = [(n, node_plan[n.name]) for _, n in ctx.index.find_nodes() if n.name in node_plan]
    for target, new in nodes_to_rename:
        ctx.rename_node(target, new)
    renamed = sum(o != n for p in tensor_plans.values() for o, n in p.items()) + len(nodes_to_rename)
    if not renamed:
        ctx.note("every name given already has the name asked for")
