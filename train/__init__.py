"""train: pretraining, finetuning, evaluation and serving of GPT/Llama-style models on curate's shards."""

__version__ = "0.1.0"
