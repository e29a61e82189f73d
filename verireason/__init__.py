"""verireason: an experiment suite for LLM self-verification.

Reproduces and extends *Learning to Self-Verify* (arXiv 2602.07594), *Self-Trained Verification* (arXiv 2605.30290)
and *S²R* (arXiv 2502.12853) on one shared protocol layer. See README.md for the commands.
"""

__version__ = "0.1.0"
