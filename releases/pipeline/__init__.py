"""The steps a worker runs (build, upload, verify) and the tools they call."""
