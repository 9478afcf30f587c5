"""Workers: processes of one dependency's pool that run its commands, one per slot."""
