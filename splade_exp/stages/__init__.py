"""Training stages as LightningModules (EMLM pretraining, SPLADE fine-tuning) and evaluation."""
