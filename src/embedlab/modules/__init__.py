"""LightningModules: training steps, logging and optimizer wiring."""
