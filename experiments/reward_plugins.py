"""Example reward plug-ins for `rl-gen` / `rl-verify` (`verireason.plugins`): each is a plain function of
(problem, completion, grade) -> float, added to the correctness reward with `reward.extra=[...]` (or replacing it
with `reward.fn=...`).

    verireason rl-gen --bench arith preset=cpu_small --steps 2 \
        'reward.extra=[experiments/reward_plugins.py:brevity,experiments/reward_plugins.py:boxed_format]'
"""


def brevity(problem, completion, grade) -> float:
    """A length term: -0.1 per 100 generated tokens (correct or not), a nudge towards shorter reasoning."""
    return -0.001 * completion.tokens


def boxed_format(problem, completion, grade) -> float:
    """A format term: +0.1 when the answer is boxed where the grader reads it, whatever its correctness."""
    return 0.1 if grade.formatted else 0.0
