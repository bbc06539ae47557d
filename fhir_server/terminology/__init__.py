"""Terminology for the IG: code systems, value-set expansion, code validation, lookup, translation."""
