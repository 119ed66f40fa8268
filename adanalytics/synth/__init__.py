"""Synthetic datasets with planted truth (``adanalytics generate``).

>>> from adanalytics.synth import generate
>>> result = generate("data/tiny", scale="tiny", seed=0)      # doctest: +SKIP
>>> result.rows["locations"]                                  # doctest: +SKIP
10000

See :func:`generate` for the layout written and ``truth.json`` for what is planted.
"""

from __future__ import annotations

from adanalytics.synth.generator import SCALES, GenerateResult, generate, resolve_scale

__all__ = ["SCALES", "GenerateResult", "generate", "resolve_scale"]
