"""Synthetic data for tests and benchmarks.

This package serves ``tests/`` and ``bench/`` only: production code never imports it (in
the layering it sits above every production package but the CLI and orchestration).

* :mod:`.panels`          — synthetic point-in-time panels with a planted, tunable signal.
* :mod:`.lookahead`       — perturb a panel after a date; bit-identical frame comparison.
* :mod:`.lakes`           — the vendor simulator's market as silver lake rows, and
  :func:`~pipelines.testing.lakes.simulated_lake`, the one simulated-lake factory.
* :mod:`.contract_frames` — clean mapped vendor frames for contract tests and benchmarks.
* :mod:`.optimization`    — synthetic, internally consistent portfolio optimization problems.
* :mod:`.foreign_vendor`  — a vendor unlike the simulator in every respect (latin-1, ``;``,
  FIGI ids, ``/outgoing/YYYYMMDD/``) written as a file tree, with its ground truth.
* :mod:`.sshd`            — OpenSSH's sshd on loopback serving a tree (key auth, pinned host key).
* :mod:`.vendor_folder`   — a vendor's file drop in memory (``FileSource`` over a dict).
"""
