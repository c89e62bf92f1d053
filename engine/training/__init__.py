"""Training InstMatt: configs, batches from generated composites, the two-stage loop."""
