"""Offline replay: the log format, targets, off-policy estimators, interop and tuning."""
