"""Output vocabularies of the sparse head and their initialisation."""
