"""brrrr.models: generative atlas models (β-VAE, hierarchical VAE, PointNet++ VAE)."""

__all__: list[str] = []
