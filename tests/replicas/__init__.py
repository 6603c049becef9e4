"""Several replicas on one store: claims, leadership, failover."""
