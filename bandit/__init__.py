"""Contextual-bandit engine: pruning, the VW policy, slates, uncertainty and routing."""
