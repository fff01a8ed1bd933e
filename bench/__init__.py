"""Benchmarks of workspace-images, each against its baselines in the same run (`python -m bench.<name>`)."""
