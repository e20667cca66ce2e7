"""The step model's named terms: compute, host, communication, overlap, pipeline, data parallel."""
