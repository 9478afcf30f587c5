"""A small example of seawall: one pool of workers, commands, and a caller that uses them."""
