"""Models: GCN backbones, the FineTec modules, and the registry (``create_model``)."""
