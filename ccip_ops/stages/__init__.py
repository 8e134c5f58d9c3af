"""One module per NRAO recipe stage; each has a ``run(...)`` taking paths and dataclasses."""
