"""pgnotes: policy gradients with Gaussian policies.

The companion package of the *pgnotes* course. Its modules hold the reference
answers that the book derives and verifies; the book imports them so the two
never drift apart.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pgnotes")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
