"""The IG's source: its artefacts written as compact Python, generated into ``profiles/`` as FHIR JSON.

``fhir-server ig generate`` writes the JSON (with snapshots); a test regenerates it and compares with
the committed files, so the two never drift. The server only ever loads the committed JSON.
"""
