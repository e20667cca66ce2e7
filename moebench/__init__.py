"""moebench: what it costs, and how long it takes, to train a Mixture-of-Experts model.

Use from Python (:mod:`moebench.api`, :mod:`moebench.api_estimate`): ``moebench.estimate``,
``explain``, ``estimate_mix`` (a mixed cluster), ``compare``, ``validate``, ``sweep`` and
``calibrate`` take the command-line options as keyword arguments and return typed records with
``.to_frame()``::

    import moebench
    moebench.estimate(model="ling-plus", chip="h800", num_chips=1024).to_frame()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["calibrate", "compare", "estimate", "estimate_mix", "explain", "sweep", "validate"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that ``import moebench`` (and the CLI's start) stays light.
    if name in ("estimate_mix", "explain"):
        from moebench import api_estimate

        return getattr(api_estimate, name)
    if name in __all__:
        from moebench import api

        return getattr(api, name)
    raise AttributeError(f"module 'moebench' has no attribute {name!r}")
