"""``python -m s2s.cli ...``: how the demo and the tests start workers and commands."""

from s2s.cli import main

if __name__ == "__main__":
    main()
