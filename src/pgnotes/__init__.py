"""pgnotes: policy gradients with Gaussian policies.

The companion package of the *pgnotes* course. Its modules hold the reference
answers that the book derives and verifies; the book imports them so the two
never drift apart.

Every public function follows the same input rules, stated once on the book's
page "Input rules" (book/input_rules.md): what is accepted (float32 and float64
tensors, NumPy arrays, Python numbers), what is promoted (integers and bools, to
the floating dtype of the other arguments) and what is refused with a
``ValueError`` or ``TypeError`` naming the argument (complex and half-precision
values, NaN and inf, shapes that do not broadcast, counts that are not positive
integers, covariances that are not symmetric positive definite).
``pgnotes.PrecisionWarning`` flags a float32 answer with fewer than two correct digits.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pgnotes")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"



class PrecisionWarning(UserWarning):
    """The answer is computed, but the dtype cannot hold the digits it needs (use float64)."""


__all__ = ["__version__", "PrecisionWarning"]
