"""``lighthpc``, the command line: local runs on the embedded cloud, and the remote verbs
against a deployed stack. A host of the domain: nothing imports it but tests."""
