"""Fuzz tests of the scenario loader, the topology importers and the library (issue #14)."""
