"""Multi-host tests: hosts made of network namespaces, seawall across them over CURVE."""
