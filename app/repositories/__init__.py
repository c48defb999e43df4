"""All queries live here; services call repositories and never write SQL themselves."""
