"""A chain of Reshapes and Transposes that only permutes dims becomes one Transpose.

Exporters write a key's transpose for attention as ``Reshape(Transpose(Reshape(Transpose(k, [0,2,1,3]),
[B*H,S,D]), [0,2,1]), [B,H,D,S])``: heads merged into the batch for a rank-3 transpose, then split out again.
That is ``Transpose(k, [0,2,3,1])``. Each dim of the chain's source (other than 1s) is an atom; a Reshape,
Flatten, Squeeze or Unsqueeze regroups the atoms in order (known dims say how), a Transpose permutes the groups;
if every dim at the end is a single atom (or a 1), the chain is a permutation of the source. Only where every
intermediate feeds nothing but the next link. (Chains of Transpose/Squeeze/Unsqueeze alone are simplify's
layout fusion.)
"""

from __future__ import annotations

import math

import numpy as np
from onnx import NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.fusions import layout_axes
from graphsurgeon.verbs.simplify.patterns import (
    STANDARD,
    alive,
    attr,
    constant_value,
    nodes_of,
    pattern,
    sole_reader,
)

_REGROUP = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
_LINKS = ("Transpose", *_REGROUP)

Group = tuple[int, ...]  # the source dims (atoms) one dim is made of, in order; () for a 1


@pattern("layout_permutation")
def fuse_permuting_chains(ctx: Editor, shapes: ShapeInfo) -> int:
    fused = 0
    for scope, last in nodes_of(ctx, *_LINKS):
        if not alive(ctx, last) or not last.input or len(last.output) != 1:
            continue
        reader = sole_reader(scope, last.output[0])
        if reader is not None and _is_link(reader):
            continue  # not the end of a chain
        chain = _chain_ending_at(scope, last)
        for start in range(len(chain) - 1):
            links = chain[start:]
            if not any(link.op_type in _REGROUP for link in links):
                break
            perm = _permutation(ctx, scope, shapes, links)
            if perm is None:
                continue
            ctx.set_node_inputs(last, [links[0].input[0]])
            ctx.set_op(last, "Transpose")
            ctx.replace_attributes(last, {"perm": perm})
            ctx.remove_nodes(links[:-1], scope=scope)
            fused += len(links) - 1
            break
    return fused


def _is_link(node: NodeProto) -> bool:
    return node.op_type in _LINKS and node.domain in STANDARD and len(node.output) == 1 and bool(node.input)


def _chain_ending_at(scope: Scope, last: NodeProto) -> list[NodeProto]:
    chain = [last]
    while len(chain) < 16:
        producer = scope.producer.get(chain[0].input[0])
        if producer is None or not _is_link(producer) or sole_reader(scope, producer.output[0]) is not chain[0]:
            break
        chain.insert(0, producer)
    return chain


def _permutation(ctx: Editor, scope: Scope, shapes: ShapeInfo, links: list[NodeProto]) -> list[int] | None:
    """The perm of the Transpose equal to `links` applied to their source, or None if they are not one."""
    source = shapes.symbolic_dims(scope, links[0].input[0])
    if source is None or any(d is None or d == 0 for d in source):
        return None
    dims = list(source)
    groups: list[Group] | None = [() if d == 1 else (i,) for i, d in enumerate(source)]
    for link in links:
        if groups is None:
            return None
        if link.op_type == "Transpose":
            perm = attr(link, "perm")
            perm = list(range(len(groups)))[::-1] if perm is None else list(perm)
            if sorted(perm) != list(range(len(groups))):
                return None
            groups, dims = [groups[p] for p in perm], [dims[p] for p in perm]
            continue
        out = shapes.symbolic_dims(scope, link.output[0])
        if out is None or not _as_the_op_defines(ctx, scope, link, dims, out):
            return None
        groups, dims = _regroup(source, groups, out), list(out)
    if groups is None or len(groups) != len(source) or any(len(g) > 1 for g in groups):
        return None
    if sorted(g[0] for g in groups if g) != [i for i, d in enumerate(source) if d != 1]:
        return None
    ones = iter(i for i, d in enumerate(source) if d == 1)
    return [g[0] if g else next(ones) for g in groups]


def _as_the_op_defines(ctx: Editor, scope: Scope, link: NodeProto, dims: list, out: list) -> bool:
    """Do the recorded output dims follow from the op's own definition (its constant target or axes)? Recorded
    shapes may be declarations a model got wrong; the rewrite must rest on what the op computes. (Together with
    `_regroup` consuming every atom, which fixes the total size, the one -1 of a target is then determined.)"""
    if link.op_type == "Flatten":
        axis = attr(link, "axis", 1)
        axis = axis + len(dims) if axis < 0 else axis
        head, tail = dims[:axis], dims[axis:]
        return len(out) == 2 and all(isinstance(d, int) for d in dims) and out == [math.prod(head), math.prod(tail)]
    if link.op_type == "Reshape":
        target = constant_value(ctx, scope, link.input[1], limit=1024) if len(link.input) > 1 else None
        if target is None:
            target_attr = attr(link, "shape")  # Reshape-1
            target = None if target_attr is None else np.array(target_attr)
        if target is None or target.ndim != 1 or len(target) != len(out) or int(np.sum(target == -1)) > 1:
            return False
        for i, t in enumerate(target.tolist()):
            if t == 0 and not attr(link, "allowzero", 0):
                if i >= len(dims) or out[i] != dims[i]:
                    return False
            elif t != -1 and out[i] != t:
                return False
        return True
    axes = layout_axes(ctx, scope, link)
    if axes is None and link.op_type == "Squeeze" and len(link.input) < 2:
        axes = []  # no axes: every unit dim goes
    if axes is None:
        return False
    if link.op_type == "Squeeze":
        rank = len(dims)
        drop = {a + rank if a < 0 else a for a in axes} if axes else {i for i, d in enumerate(dims) if d == 1}
        return all(0 <= a < rank and dims[a] == 1 for a in drop) and out == [
            d for i, d in enumerate(dims) if i not in drop
        ]
    rank = len(dims) + len(axes)  # Unsqueeze
    insert = {a + rank if a < 0 else a for a in axes}
    if len(insert) != len(axes) or not all(0 <= a < rank for a in insert):
        return False
    rest = iter(dims)
    return out == [1 if i in insert else next(rest) for i in range(rank)]


def _regroup(source: list, groups: list[Group], out: list) -> list[Group] | None:
    """The groups after an order-keeping reshape to `out` dims; None where a dim would split an atom."""
    atoms = [a for g in groups for a in g]
    result: list[Group] = []
    at = 0
    for dim in out:
        if dim is None or dim == 0:
            return None
        if dim == 1:
            result.append(())
            continue
        if at >= len(atoms):
            return None
        if not isinstance(dim, int) or not isinstance(source[atoms[at]], int):
            if source[atoms[at]] != dim:  # a symbolic dim matches only the same symbol
                return None
            result.append((atoms[at],))
            at += 1
            continue
        run: list[int] = []
        while at < len(atoms) and isinstance(source[atoms[at]], int) and math.prod(source[a] for a in run) < dim:
            run.append(atoms[at])
            at += 1
        if math.prod(source[a] for a in run) != dim:
            return None
        result.append(tuple(run))
    return result if at == len(atoms) else None
