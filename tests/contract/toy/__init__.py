"""A throw-away ERP kind, entirely inside the tests folder.

Its connector, maps, in-memory ERP and contract fixtures live here and
nowhere else; ``test_new_kind`` registers it with ``workers.kinds.register``
and runs the whole contract suite on it. That the suite passes with no
change outside this folder is the proof that adding a kind is its own files
plus one registry line.
"""

KIND = "contract_toy"
