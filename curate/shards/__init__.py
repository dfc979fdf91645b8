"""The handoff from curate to train: Megatron-LM `.bin/.idx` shards, their tokenizer and metadata.json.

`format` (the on-disk layout), `writer` and `reader` (one `.bin/.idx` pair), `merge` (parts into output
files), `metadata` and `shard_set` (a whole shard directory), `bpe` (train and load the byte-level BPE),
`encoders` (HF tokenizers and the verified tiktoken fast path).
"""
