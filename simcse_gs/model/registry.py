"""Which keep policy a model runs: the one place a policy's name is looked up.

With ``use_gs`` the policy is ``gs_estimator`` (a proxy scores the tokens); without it, the control named by
``token_drop_heuristic`` (no proxy; at ``token_drop_rate`` 0 it drops nothing in training, which is plain SimCSE).
A new policy is one module with a :class:`~.keep_policy.KeepPolicy` subclass and one line in the table below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .keep_policy import KeepPolicy
from .policy_gumbel import GumbelSoftmaxPolicy, StraightThroughPolicy
from .policy_hard_concrete import HardConcretePolicy
from .policy_idf_drop import IDFDropPolicy
from .policy_random_drop import RandomDropPolicy
from .policy_reinforce import ReinforcePolicy
from .policy_topk import TopKPolicy

# --gs_estimator: the proxy's policies
GS_POLICIES: dict[str, type[KeepPolicy]] = {
    policy.name: policy
    for policy in (GumbelSoftmaxPolicy, StraightThroughPolicy, ReinforcePolicy, TopKPolicy, HardConcretePolicy)
}
# --token_drop_heuristic: the controls without a proxy
CONTROL_POLICIES: dict[str, type[KeepPolicy]] = {policy.name: policy for policy in (RandomDropPolicy, IDFDropPolicy)}
REINFORCE_REWARDS = ("sentence", "batch")


def _get(config: Any, name: str) -> Any:
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


def policy_class(config: Any) -> type[KeepPolicy]:
    """The policy class of a config (or a mapping of its settings)."""
    if _get(config, "use_gs"):
        return GS_POLICIES[_get(config, "gs_estimator")]
    return CONTROL_POLICIES[_get(config, "token_drop_heuristic")]


def policy_for(config: Any) -> KeepPolicy:
    """The keep policy a model with this config (or mapping of settings) runs."""
    return policy_class(config)(config)


def resolve_estimator(estimator: str, gs_hard: bool) -> str:
    """The estimator once the deprecated ``gs_hard`` alias is applied (``gs_hard=True`` means ``st``)."""
    if not gs_hard:
        return estimator
    if estimator in (GumbelSoftmaxPolicy.name, StraightThroughPolicy.name):
        return StraightThroughPolicy.name
    raise ValueError(f"--gs_hard (deprecated alias of --gs_estimator st) contradicts --gs_estimator {estimator}.")
