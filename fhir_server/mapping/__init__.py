"""Legacy message mapping: HL7 v2 and XML documents in, FHIR transaction Bundles out, and back.

The mapping rules live as data in ``mappings/``; this package interprets them. It never
writes to the store directly: Bundles are committed through ``Repository.process_bundle``,
the same path (validation, rules) a REST transaction takes.
"""
