"""The fuzz suite: hostile input thrown at every broker socket and at a worker."""
