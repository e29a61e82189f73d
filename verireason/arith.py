"""``arith``: a built-in, offline benchmark of multi-step arithmetic word problems.

Each problem is a short story about one quantity changed by ``level`` operations (buy packs, receive, give away,
double, split into boxes), with an exact integer answer and a step-by-step reference solution that ends in
``\\boxed{}``. Generation is seeded, so a (seed, size, levels) triple always gives the same benchmark. It exists so
that every command can run on a laptop with the embedded model, where the competition benchmarks are out of reach.
"""

from __future__ import annotations

import random

from verireason.records import Problem

_NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
_ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards"]


def _operation(rng: random.Random, name: str, item: str, value: int) -> tuple[str, str, int]:
    """One story sentence, its solution step, and the new value."""
    choices = ["buy", "receive", "double"] + (["give"] if value > 2 else [])
    divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d > 0]
    if divisors:
        choices.append("split")
    if value > 400:
        choices = [c for c in choices if c not in ("buy", "double")] or ["give"]
    kind = rng.choice(choices)
    if kind == "buy":
        packs, per = rng.randint(2, 6), rng.randint(2, 9)
        new = value + packs * per
        return (f"{name} buys {packs} packs with {per} {item} in each pack.",
                f"{name} buys {packs} × {per} = {packs * per} {item}, so {value} + {packs * per} = {new}.", new)
    if kind == "receive":
        k = rng.randint(3, 25)
        return f"A friend gives {name} {k} more {item}.", f"After receiving {k}: {value} + {k} = {value + k}.", value + k
    if kind == "give":
        k = rng.randint(1, value - 1)
        return f"{name} gives away {k} {item}.", f"After giving away {k}: {value} - {k} = {value - k}.", value - k
    if kind == "double":
        return (f"Then the number of {item} {name} has doubles.", f"Doubling: {value} × 2 = {value * 2}.", value * 2)
    d = rng.choice(divisors)
    return (f"{name} splits the {item} equally into {d} boxes and keeps only one box.",
            f"Splitting into {d} boxes: {value} ÷ {d} = {value // d}.", value // d)


def make_problem(rng: random.Random, level: int, index: int) -> Problem:
    """One problem with ``level`` operations after the starting amount."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    value = rng.randint(5, 40)
    story, steps = [f"{name} has {value} {item}."], [f"{name} starts with {value} {item}."]
    for _ in range(level):
        sentence, step, value = _operation(rng, name, item, value)
        story.append(sentence)
        steps.append(step)
    question = " ".join(story) + f" How many {item} does {name} have now?"
    solution = "\n".join(steps) + f"\nSo {name} has {value} {item} now. The answer is \\boxed{{{value}}}."
    return Problem(id=f"arith-{index}", problem=question, answer=str(value), source="arith", solution=solution,
                   level=str(level))


def generate(size: int, seed: int = 0, levels: list[int] | tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[Problem]:
    """``size`` problems cycling through ``levels``; the same arguments give the same problems."""
    if not levels or min(levels) < 1:
        raise ValueError("arith levels must be positive integers")
    return [make_problem(random.Random(f"{seed}-{i}"), levels[i % len(levels)], i) for i in range(size)]
