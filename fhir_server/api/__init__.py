"""The HTTP layer: thin routes over the repository, search and operations."""
