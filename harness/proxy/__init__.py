"""The counting reverse proxy: measure the exchange amplification of any client, unmodified.

`ampbench proxy` and `ampbench wrap` put `CountingProxy` between a client
(an SDK app, Claude Code, any agent that takes a base URL) and its upstream,
and write the same result files as `ampbench run`.
"""

from harness.proxy.server import CASSETTE_MODES, CountingProxy, ProxyConfig, ProxyThread

__all__ = ["CASSETTE_MODES", "CountingProxy", "ProxyConfig", "ProxyThread"]
