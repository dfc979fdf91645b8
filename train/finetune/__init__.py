"""Finetuning of checkpoints: SFT and DPO on JSONL data, full or with LoRA adapters (`train finetune`)."""
