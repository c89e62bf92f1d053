"""Training data: HIM2K loader, procedural figures, synthesis."""
