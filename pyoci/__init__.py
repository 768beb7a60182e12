"""pyoci: a low-level OCI container runtime in Python."""

__version__ = "0.1.0"
# The runtime-spec version pyoci implements: `pyoci --version`, `pyoci spec`,
# and the state it reports when a config has no ociVersion.
SPEC_VERSION = "1.2.0"
