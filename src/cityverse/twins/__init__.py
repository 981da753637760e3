"""Domain twins: one package per domain (water first), each over the same NGSI-LD entities."""
