"""ampbench: measure exchange amplification of agent runs."""

__version__ = "0.1.0"
