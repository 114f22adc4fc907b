"""Comparing fronts with fronts: iso-accuracy cost, accuracy at a cost, dominated hypervolume.

A front here is a list of points ``(cost, accuracy)`` — cost on any axis (size, MACs,
latency), lower is better — each accuracy a mean over seeds. Its *envelope* is the best
accuracy reachable at or below a cost.

Example:
    >>> pts = [(0.2, 90.0), (0.4, 92.0), (1.0, 93.0)]
    >>> round(cost_at_accuracy(pts, 91.0), 4)   # halfway in log cost between 0.2 and 0.4
    0.2828
    >>> accuracy_at_cost(pts, 0.5)
    92.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["envelope", "cost_at_accuracy", "accuracy_at_cost", "hypervolume"]

Point = tuple[float, float]


def envelope(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points, by increasing cost and strictly increasing accuracy."""
    out: list[Point] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or a > out[-1][1]:
            if out and c == out[-1][0]:
                continue
            out.append((c, a))
    return out


def cost_at_accuracy(points: Sequence[Point], target: float) -> float | None:
    """The smallest cost at which the front reaches ``target`` accuracy, interpolated linearly
    in log cost between the envelope's points (``None``: never reached). When the front's
    cheapest point already reaches it, that point's cost is returned (an upper bound)."""
    env = envelope(points)
    for i, (c, a) in enumerate(env):
        if a >= target:
            if i == 0:
                return c
            c0, a0 = env[i - 1]
            t = (target - a0) / (a - a0)
            return math.exp(math.log(c0) + t * (math.log(c) - math.log(c0)))
    return None


def accuracy_at_cost(points: Sequence[Point], cost: float) -> float | None:
    """The best accuracy of a point at or below ``cost`` (``None``: none that cheap)."""
    accs = [a for c, a in points if c <= cost * (1 + 1e-9)]
    return max(accs) if accs else None


def hypervolume(points: Sequence[Point], ref_cost: float, ref_acc: float) -> float:
    """Area dominated by the front in (log cost, accuracy), bounded by the reference point
    ``(ref_cost, ref_acc)``: larger is better. Points beyond the reference count for nothing."""
    env = [(math.log(c), a) for c, a in envelope(points) if c < ref_cost and a > ref_acc]
    area, x_ref = 0.0, math.log(ref_cost)
    for i, (x, a) in enumerate(env):
        x_next = env[i + 1][0] if i + 1 < len(env) else x_ref
        area += (x_next - x) * (a - ref_acc)
    return area
