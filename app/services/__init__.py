"""Business logic: services call repositories and flush; the caller owns the commit."""
