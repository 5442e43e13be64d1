"""Pure PyTorch building blocks: losses, heads, EMA targets, cross-process gathering."""
