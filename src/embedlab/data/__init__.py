"""Dataset specs, loaders and datamodules."""
