"""Plain ``nn.Module`` building blocks (no Lightning imports)."""
