"""One module per registered kind: its emulator, sample settings and a
sample order, declared with ``tests.contract.fixtures.add``.

Modules here are found, not listed: a new kind's fixtures are one new file.
"""
