"""Training: the LightningModule, the Trainer factory, optimisers, schedules and callbacks."""
