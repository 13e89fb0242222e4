"""Training: data loading, the GAN and encoder training loops, and export to a model bundle."""
