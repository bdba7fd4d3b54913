"""A policy and a limits file loaded together: every pre-trade limit the optimizer can
honour is added to the policy, and a pair that cannot both hold is refused.

Pre-trade (:mod:`pipelines.risk.pretrade`) rejects an order that breaches a limit; a
policy that never saw that limit produces such orders by design (the shipped
``long_only`` policy with a ±10 % net band rejected 146 of 373 orders). So
:func:`reconcile` gives the optimizer the same numbers:

* the exposure tree (:meth:`RiskLimits.tree`: gross / net / long / short per portfolio,
  region, asset class, sector and security) becomes the policy's hard ``limits``;
* ``max_adv_pct`` caps the policy's ``participation``; ``max_order_notional`` and
  ``max_order_shares`` become its per-name trade caps (``max_trade_notional`` /
  ``max_trade_shares``); the ``restricted`` list becomes names it may not trade.

It refuses — :class:`LimitsConsistencyError`, one line naming the limit and the policy —
a pair whose bounds cannot both hold: the policy's net band outside the portfolio's,
a portfolio gross / long / short limit below what the policy's net band requires, or a
sector band disjoint from the policy's.

Not added: the price collar, the daily loss limit and the kill switch judge prices and
state at send time, which the optimizer does not decide.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.errors import ConfigurationError
from pipelines.portfolio.limits_tree import Band
from pipelines.portfolio.policy import Policy, load_policy
from pipelines.risk.pretrade import RiskLimits, load_limits


class LimitsConsistencyError(ConfigurationError):
    """A policy and a limits file whose bounds cannot both hold."""


def _band(b: Band) -> str:
    return f"[{b.lo:+.3f}, {b.hi:+.3f}]"


def _disjoint(a: Band, b: Band) -> bool:
    return a.hi < b.lo or b.hi < a.lo


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def check(policy: Policy, limits: RiskLimits, limits_name: str = "limits") -> None:
    """Raise :class:`LimitsConsistencyError` if ``policy`` and ``limits`` cannot both hold."""
    tree = limits.tree()
    pf = tree.portfolio
    net = policy.net_exposure

    def refuse(limit: str, why: str) -> None:
        raise LimitsConsistencyError(
            f"limit {limit} of {limits_name} and policy {policy.name} cannot both hold: {why}"
        )

    if pf.net is not None and _disjoint(pf.net, net):
        refuse(
            f"portfolio net {_band(pf.net)}",
            f"the policy's net_exposure is {_band(net)}",
        )
    need_gross = max(net.lo, -net.hi, 0.0)
    if pf.gross is not None and pf.gross < need_gross:
        refuse(
            f"portfolio gross {pf.gross:.3f}",
            f"the policy's net_exposure {_band(net)} needs gross ≥ {need_gross:.3f}",
        )
    if pf.long is not None and pf.long < net.lo:
        refuse(
            f"portfolio long {pf.long:.3f}",
            f"the policy's net_exposure {_band(net)} needs long ≥ {net.lo:.3f}",
        )
    if pf.short is not None and pf.short < -net.hi:
        refuse(
            f"portfolio short {pf.short:.3f}",
            f"the policy's net_exposure {_band(net)} needs short ≥ {-net.hi:.3f}",
        )
    sector = tree.each.get("sector")
    sector_net = sector.net if sector is not None else None
    if (
        sector_net is not None
        and policy.sector_bounds is not None
        and _disjoint(sector_net, policy.sector_bounds)
    ):
        refuse(
            f"sector net {_band(sector_net)}",
            f"the policy's sector_bounds are {_band(policy.sector_bounds)}",
        )
    if policy.limits is not None and policy.limits != tree:
        raise LimitsConsistencyError(
            f"policy {policy.name} declares its own limits and {limits_name} others: "
            "declare the limit tree in the limits file only"
        )


def reconcile(policy: Policy, limits: RiskLimits, limits_name: str = "limits") -> Policy:
    """``policy`` with every limit of ``limits`` the optimizer can honour (module
    docstring); refuses an inconsistent pair (:func:`check`)."""
    check(policy, limits, limits_name)
    update = {
        "limits": limits.tree(),
        "participation": _min(policy.participation, limits.max_adv_pct),
        "max_trade_notional": _min(policy.max_trade_notional, limits.max_order_notional),
        "max_trade_shares": _min(policy.max_trade_shares, limits.max_order_shares),
        "no_trade": sorted(set(policy.no_trade) | set(limits.restricted)),
    }
    return Policy.model_validate({**policy.model_dump(), **update})


def load_policy_with_limits(
    policy: str | Path | Policy, limits: str | Path | RiskLimits
) -> tuple[Policy, RiskLimits]:
    """Load a policy and a limits file together (names or paths, as
    :func:`~pipelines.portfolio.policy.load_policy` / :func:`~pipelines.risk.pretrade.load_limits`
    take them): the reconciled policy and the limits."""
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    lim = limits if isinstance(limits, RiskLimits) else load_limits(limits)
    name = "limits" if isinstance(limits, RiskLimits) else f"limits {limits}"
    return reconcile(pol, lim, name), lim


__all__ = ["LimitsConsistencyError", "check", "load_policy_with_limits", "reconcile"]
