"""The portfolio package's errors: each an :class:`~pipelines.errors.AlphaFactoryError`
refining the builtin callers already catch (``ValueError``, ``LookupError``, ``KeyError``)."""

from __future__ import annotations

from pipelines.errors import AlphaFactoryError


class PortfolioError(AlphaFactoryError):
    """Root of the portfolio package's errors."""


class PortfolioInputError(PortfolioError, ValueError):
    """An input (prices, shapes, a policy against a model, a knowledge time) is not usable."""


class NoWeightsError(PortfolioError, ValueError):
    """The optimization produced no weights (its status and message say why)."""


class PortfolioLookupError(PortfolioError, LookupError):
    """Nothing stored for the asked day and knowledge time (risk model, scores)."""


class UnknownSecurityError(PortfolioError, KeyError):
    """A security (or date) is not in the risk model."""
