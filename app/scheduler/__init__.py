"""The scheduler role: background loops that keep the job rows and the broker honest, outside the HTTP layer."""
