"""Loops in a graph of names (models that fall back to each other), found in linear time."""

from __future__ import annotations


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One shortest cycle per loop of models that fall back to each other (a strongly
    connected component), from its smallest name. Listing every elementary cycle, or every
    path into one, grows exponentially with a dense graph; one cycle per loop is linear."""
    out = []
    for component in components(graph):
        if len(component) == 1:
            continue  # no loop (a self-reference is reported where it is written)
        start = min(component)
        # breadth-first from start back to it, inside the component: a shortest cycle
        parent: dict[str, str] = {}
        queue, found = [start], None
        while queue and found is None:
            nxt_queue = []
            for node in queue:
                for nxt in graph.get(node, []):
                    if nxt == start:
                        found = node
                        break
                    if nxt in component and nxt not in parent:
                        parent[nxt] = node
                        nxt_queue.append(nxt)
                if found is not None:
                    break
            queue = nxt_queue
        cycle = [found] if found is not None else []
        while cycle and cycle[-1] != start:
            cycle.append(parent[cycle[-1]])
        out.append(cycle[::-1])
    return sorted(out)


def components(graph: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iterative (no recursion limit to hit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, [])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, []))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    out.append(component)
    return out
