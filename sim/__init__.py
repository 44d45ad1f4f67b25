"""Simulation of customers and curators driving the real loop."""
