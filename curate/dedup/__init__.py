"""Building blocks of the dedup stages (`dedup_exact`, `dedup_fuzzy`), one job per module.

Text normalization and shingling, MinHash signatures (numpy on CPU, torch on GPU, identical bits), LSH
banding, exact Jaccard verification, distributed connected components, and the Parquet exchange that
moves rows between the phases, so no task ever holds the whole dataset.
"""
