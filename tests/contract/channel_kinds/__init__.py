"""One module per channel kind: what it supplies to the channel contract suite."""
