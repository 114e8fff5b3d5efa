"""`python -m flows` is `politikpi`."""

from flows.cli import main

main()
