"""Steps: run the tools (build back-ends, uv, twine, cyclonedx-py) and return
results as dataclasses. A step never touches the database: what it needs
comes in as plain values, what it learnt goes out as its result, and the
services store it."""
