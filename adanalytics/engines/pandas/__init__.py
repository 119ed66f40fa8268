"""The pandas engine: the reference semantics, and the kernels Dask runs per partition."""
