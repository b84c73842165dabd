"""brrrr.ingest: neuroimaging datasets to Hugging Face datasets, fetchers, coordinate databases."""

__all__: list[str] = []
