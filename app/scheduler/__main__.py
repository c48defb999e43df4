"""`python -m app.scheduler` (or `epochly-scheduler`): run one scheduler process."""

from app.scheduler.service import main

main()
