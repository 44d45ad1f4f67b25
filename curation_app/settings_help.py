"""Labels, units and one line of help for each policy setting, as the settings page shows them.

A setting missing here still appears, labelled from its name, so a new field is never hidden.
"""

from __future__ import annotations

from typing import NamedTuple


class FieldHelp(NamedTuple):
    """How the settings page presents one field."""

    label: str
    unit: str
    help: str


HELP: dict[str, FieldHelp] = {
    "name": FieldHelp("Config name", "", "Versions are numbered per name."),
    "algorithm": FieldHelp(
        "Exploration algorithm", "", "How the policy explores; only its own parameters are shown."
    ),
    "epsilon": FieldHelp(
        "Epsilon",
        "share 0-1",
        "The exploration floor: each of the K candidates keeps at least epsilon/K.",
    ),
    "softmax_lambda": FieldHelp(
        "Softmax lambda", "> 0", "Higher is greedier: picks concentrate on the best scores."
    ),
    "bag_size": FieldHelp("Bag size", "models, 2-64", "Bootstrapped models voting (bagging)."),
    "cover_size": FieldHelp("Cover size", "policies, 1-64", "Policies kept by online cover."),
    "squarecb_gamma_scale": FieldHelp(
        "SquareCB gamma scale", "> 0", "Higher explores less as data accumulates."
    ),
    "rnd_size": FieldHelp("RND size", "networks, 1-64", "Random networks behind the RND bonus."),
    "learning_rate": FieldHelp("Learning rate", "> 0", "VW's step size for online updates."),
    "vw_bits": FieldHelp("Feature hash bits", "bits, 10-28", "Model size is 2^bits weights."),
    "candidate_count": FieldHelp(
        "Candidates (K)", "items", "Items the pre-scorer passes to the policy; at least M."
    ),
    "slate_size": FieldHelp("Slate size (M)", "items", "Items proposed per request."),
    "exploration_slot_share": FieldHelp(
        "Exploration slots", "share 0-1", "Share of K reserved for items the pre-scorer ranks low."
    ),
    "routing_mode": FieldHelp(
        "Routing mode", "", "Who acts: thresholds (partial), always confirm, verify after, ..."
    ),
    "uncertainty_measure": FieldHelp(
        "Uncertainty measure", "", "How unsure the policy is; committee measures need bagging."
    ),
    "uncertainty_temperature": FieldHelp(
        "Uncertainty temperature", "> 0", "Softens scores into the distribution measured."
    ),
    "auto_threshold": FieldHelp(
        "Auto threshold",
        "confidence 0-1",
        "At or above: delivered with no review. Not used when risk-controlled: there the "
        "evidence sets the approval threshold.",
    ),
    "review_threshold": FieldHelp(
        "Review threshold",
        "confidence 0-1; approval 0-1 when risk-controlled",
        "Below: a curator reviews before output. Risk-controlled: on the slate's approval, "
        "it splits what is not automated into review after (at or above) and before; 1.0 "
        "reviews all of it before.",
    ),
    "max_override_rate": FieldHelp(
        "Max override rate",
        "share in (0, 0.5]",
        "At most this share of automatic deliveries would have been changed by a curator.",
    ),
    "confidence_level": FieldHelp(
        "Confidence level",
        "level in [0.5, 0.999]",
        "How sure the bound on that override rate must be before a slate is automated.",
    ),
    "audit_share": FieldHelp(
        "Audit share",
        "share in [0, 0.5]",
        "Of the slates routing would automate, this share goes out and is also reviewed, "
        "blinded: the unbiased evidence of the override rate.",
    ),
    "risk_window": FieldHelp(
        "Risk window",
        "reviewed slates, 50-1000000",
        "The latest reviewed slates the override bound is computed over.",
    ),
    "drift_guard": FieldHelp(
        "Drift guard",
        "",
        "The threshold must also pass on the newer half of the window alone, so curators "
        "growing stricter re-tighten it sooner; automates less where evidence is thin.",
    ),
    "review_lease_seconds": FieldHelp(
        "Review lease", "seconds", "How long a claimed task stays with its curator between beats."
    ),
    "reward_wait_seconds": FieldHelp(
        "Reward wait", "seconds", "How long to wait for a customer outcome before the default."
    ),
    "default_reward": FieldHelp(
        "Default reward", "reward", "Learned when no outcome arrives within the wait."
    ),
    "learn_from_swap_ins": FieldHelp(
        "Learn from swap-ins", "", "Curators' swapped-in items become imitation examples."
    ),
    "action_space": FieldHelp(
        "Action space", "", "prescore, or VW's large-action-space reduction."
    ),
    "las_max_actions": FieldHelp(
        "Large-action-space max", "actions", "Actions VW keeps per decision in that mode."
    ),
    "review_sla_seconds": FieldHelp(
        "Review SLA", "seconds", "A task waiting this long outranks any fresh one, then overflows."
    ),
    "curator_capacity_per_hour": FieldHelp(
        "Curator capacity",
        "tasks per hour",
        "All curators together; sets when the queue overflows.",
    ),
    "overflow_policy": FieldHelp(
        "Overflow policy", "", "What happens to tasks the curators cannot reach within the SLA."
    ),
    "double_review_share": FieldHelp(
        "Double-review share", "share 0-1", "Tasks also given to a second curator, for agreement."
    ),
    "fallback_min_seconds": FieldHelp(
        "Shortest client fallback",
        "seconds",
        "The least a rank request may ask to wait before its slate goes out unreviewed.",
    ),
    "fallback_max_seconds": FieldHelp(
        "Longest client fallback",
        "seconds, 0 forbids",
        "The most a rank request may ask to wait before its slate goes out unreviewed.",
    ),
    "blinded_review": FieldHelp(
        "Blinded review", "", "Hide probabilities and exploration flags from curators."
    ),
}

# The exploration parameters each algorithm reads (the flags `bandit.engine.policy` passes to
# VW); the others are hidden while it is selected.
ALGORITHM_PARAMETERS: dict[str, tuple[str, ...]] = {
    "epsilon_greedy": ("epsilon",),
    "softmax": ("softmax_lambda",),
    "bag": ("bag_size", "epsilon"),
    "squarecb": ("squarecb_gamma_scale",),
    "cover": ("cover_size", "epsilon"),
    "rnd": ("rnd_size", "epsilon"),
}

# What a parameter read by several algorithms does under each, shown with the selected one.
# From VW's reductions: every one of these enforces epsilon/K as each action's minimum
# probability; cover also scales its disagreement penalty by it.
ALGORITHM_HELP: dict[str, dict[str, str]] = {
    "epsilon": {
        "epsilon_greedy": "Epsilon-greedy: the share of picks made at random; the rest go to "
        "the best score.",
        "bag": "Bagging: spread evenly on top of the models' votes (at 0 an item no model "
        "votes for is never shown); the committee uncertainty measures read the votes net of it.",
        "cover": "Online cover: a fixed floor (VW's decaying default is not used); it also sets "
        "how hard the cover's policies are pushed to disagree while learning.",
        "rnd": "RND: a floor under the bonus-weighted softmax; at 0 only the RND bonus explores.",
    },
}


def help_for(name: str) -> FieldHelp:
    """The presentation of a field (its name, humanised, when none is written down)."""
    return HELP.get(name, FieldHelp(name.replace("_", " ").capitalize(), "", ""))


def algorithms_of(name: str) -> tuple[str, ...]:
    """The algorithms that read a parameter (() for settings every algorithm uses)."""
    return tuple(algorithm for algorithm, names in ALGORITHM_PARAMETERS.items() if name in names)


def algorithm_help(name: str) -> tuple[tuple[str, str], ...]:
    """(algorithm, what the parameter does under it) for a parameter several algorithms read."""
    return tuple(ALGORITHM_HELP.get(name, {}).items())
