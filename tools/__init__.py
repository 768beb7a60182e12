"""Developer tooling (benchmark, demo, engines, bundle builder): not installed.

Run from the repository root, e.g. ``.venv/bin/python -m tools.bench``.
"""
