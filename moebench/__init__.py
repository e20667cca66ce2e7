"""moebench: what it costs, and how long it takes, to train a Mixture-of-Experts model."""

__version__ = "0.1.0"
