"""prunebench harness: data, models, perplexity, post-training, records and the pytest plugin."""

__version__ = "0.1.0"
