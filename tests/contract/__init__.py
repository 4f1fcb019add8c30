"""The connector contract, checked once over every registered kind.

See ``suite.py`` for what is checked and ``fixtures.py`` for what each kind
supplies (in ``kinds/<kind>.py``).
"""
