"""The Netflix API demo: 18 simulated backends, their commands, and the device endpoints' building blocks.

``demo.backends`` simulates the services (latency, errors, data), ``demo.commands`` wraps
each one in commands with timeouts and fallbacks, ``demo.fallbacks`` holds the front's
cache of last good values, and ``demo.views`` composes the parts the device endpoints in
``endpoints/`` (ps3, android, tv) share. Set ``SEAWALL_DEMO_FAST=1`` for tests: latencies
shrink tenfold and the backends fail only when ``seawall chaos`` says so.
"""
