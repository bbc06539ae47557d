"""Validation of incoming resources: structural (models) and by profile (StructureDefinitions)."""
