"""Example scenario and catalog files shipped with the package (used by `relove demo`)."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent
