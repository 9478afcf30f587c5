"""What every seawall process shares: the wire protocol, configuration, logging, transport."""
