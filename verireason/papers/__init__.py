"""Each paper's method in one module: what it samples, how it rewards, how its updates interleave.

* ``self_verify``: paper 1, Learning to Self-Verify (objectives and the five schedules, papers.md §1.4-1.7);
* ``stv``: paper 2, Self-Trained Verification and verifier-in-the-loop RL (papers.md §2.3-2.4, §2.8-2.9);
* ``s2r``: paper 3, S²R: its data-construction rules and process-level RL baseline (papers.md §3.2-3.5, §3.8); the
  ``s2r`` command that uses them is not built yet.

The shared engine (``trainer``, ``losses``, ``collate``, ``generation``, ``grading``) knows no paper; the commands in
``recipes`` wire a paper's module to it.
"""
