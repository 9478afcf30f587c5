"""The chaos suite: every process fault, injected under load into a real supervised cluster."""
