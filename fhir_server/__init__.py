"""FHIR R4 server for referral exchange in China's tiered-care system."""

__version__ = "0.1.0"
FHIR_VERSION = "4.0.1"
