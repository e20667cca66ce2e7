"""``moebench probe``: microbenchmarks on the local accelerator, written as a hardware profile.

Layout, from the device up: :mod:`backends` (numpy on the host CPU; :mod:`torch_backend` for
CUDA, ROCm and Ascend, imported only when chosen), :mod:`timing` (warm-up, repeated timed runs,
median and spread, the time budget), :mod:`collectives` (torch.distributed, one process per
device), :mod:`runner` (what is measured, in which order), :mod:`fit` (the step model's curves
fitted to the points), :mod:`profile` (the hardware and stack YAML) and :mod:`check` (measured
against catalog). Nothing here imports torch at module import time.
"""
